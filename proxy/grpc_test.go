package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// testService is a grpc.testing.TestService that answers with the statuses, headers and
// trailers its requests ask for.
type testService struct {
	testpb.UnimplementedTestServiceServer
}

func (testService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if st := req.GetResponseStatus(); st.GetCode() != 0 {
		// Nothing sent before the error: grpc-go answers trailers-only.
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-header", "h1"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t1"))
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: make([]byte, req.GetResponseSize())}}, nil
}

func (testService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	for _, p := range req.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	stream.SetTrailer(metadata.Pairs("x-stream-trailer", "done"))
	if st := req.GetResponseStatus(); st.GetCode() != 0 {
		return status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return nil
}

func (testService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, p := range req.GetResponseParameters() {
			if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
				return err
			}
		}
	}
}

func startGRPCServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testpb.RegisterTestServiceServer(s, testService{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return ln.Addr().String()
}

func TestGRPCThroughH2C(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	backend1 := startGRPCServer(t)
	w := world{addr: addr, services: []service{
		{domains: []string{"grpc-svc:50051"}, h2: true, backends: []backend{{cluster: "outbound|50051||grpc-svc.default.svc.cluster.local", weight: 1, endpoints: []string{backend1}}}},
		{domains: []string{"grpc-empty:50051"}, h2: true, backends: []backend{{cluster: "outbound|50051||grpc-empty.default.svc.cluster.local", weight: 1}}},
	}}
	cp.set(nodeID(addr, "test"), w.snapshot("1"))
	startProxy(t, cp, addr)

	dial := func(authority string) testpb.TestServiceClient {
		conn, err := grpc.NewClient("passthrough:///"+net.JoinHostPort(addr, "15001"),
			grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return testpb.NewTestServiceClient(conn)
	}
	client := dial("grpc-svc:50051")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("unary with headers and trailers", func(t *testing.T) {
		var header, trailer metadata.MD
		res, err := client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 100_000}, grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.GetPayload().GetBody()) != 100_000 {
			t.Errorf("payload of %d bytes, want 100000", len(res.GetPayload().GetBody()))
		}
		if got := header.Get("x-header"); len(got) != 1 || got[0] != "h1" {
			t.Errorf("header x-header = %v", got)
		}
		if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "t1" {
			t.Errorf("trailer x-trailer = %v (trailers %v)", got, trailer)
		}
	})

	t.Run("trailers-only error", func(t *testing.T) {
		msg := "no such review: 42 ✗ 100%"
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: msg}})
		if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != msg {
			t.Errorf("got %v %q, want NotFound %q", st.Code(), st.Message(), msg)
		}
	})

	t.Run("server stream ending in an error with trailers", func(t *testing.T) {
		stream, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
			ResponseParameters: []*testpb.ResponseParameters{{Size: 10}, {Size: 20}, {Size: 30}},
			ResponseStatus:     &testpb.EchoStatus{Code: int32(codes.Aborted), Message: "stopped"},
		})
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		for {
			res, err := stream.Recv()
			if err != nil {
				if st := status.Convert(err); st.Code() != codes.Aborted || st.Message() != "stopped" {
					t.Errorf("stream ended with %v, want Aborted stopped", err)
				}
				break
			}
			sizes = append(sizes, len(res.GetPayload().GetBody()))
		}
		if len(sizes) != 3 || sizes[2] != 30 {
			t.Errorf("received %v, want [10 20 30]", sizes)
		}
		if got := stream.Trailer().Get("x-stream-trailer"); len(got) != 1 || got[0] != "done" {
			t.Errorf("trailer = %v", stream.Trailer())
		}
	})

	t.Run("bidirectional stream", func(t *testing.T) {
		stream, err := client.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if err := stream.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: int32(i + 1)}}}); err != nil {
				t.Fatal(err)
			}
			// Each answer arrives before the next request is sent: the proxy streams both
			// ways at once.
			res, err := stream.Recv()
			if err != nil || len(res.GetPayload().GetBody()) != i+1 {
				t.Fatalf("message %d: %v %v", i, res, err)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Errorf("end of stream: %v, want EOF", err)
		}
	})

	t.Run("local replies speak gRPC", func(t *testing.T) {
		_, err := dial("nobody:1").EmptyCall(ctx, &testpb.Empty{})
		if st := status.Convert(err); st.Code() != codes.Unimplemented || st.Message() != "no route for nobody:1 POST /grpc.testing.TestService/EmptyCall" {
			t.Errorf("no route: %v %q, want Unimplemented", st.Code(), st.Message())
		}
		_, err = dial("grpc-empty:50051").EmptyCall(ctx, &testpb.Empty{})
		if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != "no healthy upstream" {
			t.Errorf("no endpoints: %v %q, want Unavailable no healthy upstream", st.Code(), st.Message())
		}
	})
}

package bookinfo

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	review1Text = "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"
	review2Text = "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."
)

// reviewsJSON is the answer of reviews for product 0 by pod, with rating1
// and rating2 as the "rating" members of the two reviews ("" for none).
func reviewsJSON(pod, rating1, rating2 string) string {
	rv := func(reviewer, text, rating string) string {
		s := `{"reviewer":"` + reviewer + `","text":"` + text + `"`
		if rating != "" {
			s += `,"rating":` + rating
		}
		return s + "}"
	}
	return `{"id":"0","podname":"` + pod + `","clustername":"null","reviews":[` +
		rv("Reviewer1", review1Text, rating1) + "," + rv("Reviewer2", review2Text, rating2) + "]}"
}

const ratingsDown = `{"error":"Ratings service is currently unavailable"}`

func TestReviews(t *testing.T) {
	liveRatings := serve(t, NewRatings(testLogger(t)))
	failingRatings := serve(t, &fault{status: http.StatusServiceUnavailable, n: -1})
	garbledRatings := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("not json"))
	}))
	partialRatings := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, ProductRatings{ID: 0, Ratings: map[string]int{"Reviewer2": 3}})
	}))

	tests := []struct {
		name       string
		version    string
		ratingsURL string
		want       string
	}{
		{
			name: "v1 has no ratings", version: "v1", ratingsURL: liveRatings,
			want: reviewsJSON("reviews-v1", "", ""),
		},
		{
			name: "v2 black stars", version: "v2", ratingsURL: liveRatings,
			want: reviewsJSON("reviews-v2", `{"stars":5,"color":"black"}`, `{"stars":4,"color":"black"}`),
		},
		{
			name: "v3 red stars", version: "v3", ratingsURL: liveRatings,
			want: reviewsJSON("reviews-v3", `{"stars":5,"color":"red"}`, `{"stars":4,"color":"red"}`),
		},
		{
			name: "v2 with ratings down", version: "v2", ratingsURL: downURL(t),
			want: reviewsJSON("reviews-v2", ratingsDown, ratingsDown),
		},
		{
			name: "v3 with ratings down", version: "v3", ratingsURL: downURL(t),
			want: reviewsJSON("reviews-v3", ratingsDown, ratingsDown),
		},
		{
			name: "v2 with ratings answering 503", version: "v2", ratingsURL: failingRatings,
			want: reviewsJSON("reviews-v2", ratingsDown, ratingsDown),
		},
		{
			name: "v3 with ratings answering garbage", version: "v3", ratingsURL: garbledRatings,
			want: reviewsJSON("reviews-v3", ratingsDown, ratingsDown),
		},
		{
			name: "v2 with a reviewer missing from ratings", version: "v2", ratingsURL: partialRatings,
			want: reviewsJSON("reviews-v2", ratingsDown, `{"stars":3,"color":"black"}`),
		},
		{
			name: "v1 never calls ratings, so ratings down changes nothing", version: "v1", ratingsURL: downURL(t),
			want: reviewsJSON("reviews-v1", "", ""),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewReviews(ReviewsConfig{Version: tt.version, RatingsURL: tt.ratingsURL, Logger: testLogger(t)})
			if err != nil {
				t.Fatalf("NewReviews: %v", err)
			}
			status, header, body := do(t, h, httptest.NewRequest(http.MethodGet, "/reviews/0", nil))
			if status != http.StatusOK {
				t.Errorf("status = %d, want 200", status)
			}
			if ct := header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			assertJSON(t, body, tt.want)
		})
	}
}

func TestReviewsCallsRatingsOnlyFromV2(t *testing.T) {
	for _, tt := range []struct {
		version   string
		wantCalls int
	}{{"v1", 0}, {"v2", 1}, {"v3", 1}} {
		t.Run(tt.version, func(t *testing.T) {
			ratings := record(NewRatings(nil))
			h, err := NewReviews(ReviewsConfig{Version: tt.version, RatingsURL: serve(t, ratings)})
			if err != nil {
				t.Fatalf("NewReviews: %v", err)
			}
			do(t, h, httptest.NewRequest(http.MethodGet, "/reviews/0", nil))
			if got := ratings.calls(); got != tt.wantCalls {
				t.Errorf("ratings calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestReviewsRatingsTimeout(t *testing.T) {
	// A ratings that never answers, as under Istio's ratings delay fault:
	// reviews gives up after its timeout and reports the ratings error.
	h, err := NewReviews(ReviewsConfig{
		Version:        "v3",
		RatingsURL:     serve(t, hang),
		RatingsTimeout: 50 * time.Millisecond,
		Logger:         testLogger(t),
	})
	if err != nil {
		t.Fatalf("NewReviews: %v", err)
	}
	status, _, body := do(t, h, httptest.NewRequest(http.MethodGet, "/reviews/0", nil))
	if status != http.StatusOK {
		t.Errorf("status = %d, want 200", status)
	}
	assertJSON(t, body, reviewsJSON("reviews-v3", ratingsDown, ratingsDown))
}

func TestReviewsDefaultTimeouts(t *testing.T) {
	// Istio's reviews waits 10 s for ratings in v2 and 2.5 s in v3; the
	// request-timeouts task depends on it.
	for version, want := range map[string]time.Duration{"v2": 10 * time.Second, "v3": 2500 * time.Millisecond} {
		cfg := ReviewsConfig{Version: version, RatingsURL: "http://ratings:9080"}
		cfg.provision()
		if cfg.RatingsTimeout != want {
			t.Errorf("%s: RatingsTimeout = %v, want %v", version, cfg.RatingsTimeout, want)
		}
	}
}

func TestReviewsNamesAndIDs(t *testing.T) {
	h, err := NewReviews(ReviewsConfig{Version: "v1", PodName: "reviews-v1-545db77b95-abcde", ClusterName: "east"})
	if err != nil {
		t.Fatalf("NewReviews: %v", err)
	}
	_, _, body := do(t, h, httptest.NewRequest(http.MethodGet, "/reviews/007", nil))
	want := strings.Replace(reviewsJSON("reviews-v1-545db77b95-abcde", "", ""), `"id":"0"`, `"id":"7"`, 1)
	want = strings.Replace(want, `"clustername":"null"`, `"clustername":"east"`, 1)
	assertJSON(t, body, want)
}

func TestReviewsErrorsAndHealth(t *testing.T) {
	h, err := NewReviews(ReviewsConfig{Version: "v2", RatingsURL: downURL(t)})
	if err != nil {
		t.Fatalf("NewReviews: %v", err)
	}
	tests := []struct {
		name, path string
		wantStatus int
		wantJSON   string
	}{
		{"non-numeric id", "/reviews/abc", http.StatusBadRequest, `{"error":"please provide numeric product id"}`},
		{"health", "/health", http.StatusOK, `{"status":"Reviews is healthy"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := do(t, h, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d", status, tt.wantStatus)
			}
			assertJSON(t, body, tt.wantJSON)
		})
	}
}

func TestReviewsPropagatesHeadersToRatings(t *testing.T) {
	ratings := record(NewRatings(nil))
	h, err := NewReviews(ReviewsConfig{Version: "v2", RatingsURL: serve(t, ratings)})
	if err != nil {
		t.Fatalf("NewReviews: %v", err)
	}
	in := traceHeaders()
	in.Set("End-User", "jason")
	in.Set("X-Not-Propagated", "secret")
	req := httptest.NewRequest(http.MethodGet, "/reviews/0", nil)
	req.Header = in.Clone()
	do(t, h, req)

	got := ratings.last()
	if got == nil {
		t.Fatal("ratings was not called")
	}
	for name := range in {
		if name == "X-Not-Propagated" {
			continue
		}
		if g, w := got.Get(name), in.Get(name); g != w {
			t.Errorf("ratings saw %s = %q, want %q", name, g, w)
		}
	}
	if v := got.Get("X-Not-Propagated"); v != "" {
		t.Errorf("ratings saw X-Not-Propagated = %q, want it dropped", v)
	}
}

// traceHeaders returns a value for every tracing header Bookinfo propagates.
func traceHeaders() http.Header {
	h := http.Header{}
	h.Set("X-Request-Id", "0f3c3a2e-6a8b-4c1e-9a55-1f0d1d2b3c4d")
	h.Set("X-B3-Traceid", "80f198ee56343ba864fe8b2a57d3eff7")
	h.Set("X-B3-Spanid", "e457b5a2e4d86bd1")
	h.Set("X-B3-Parentspanid", "05e3ac9a4f6e3b90")
	h.Set("X-B3-Sampled", "1")
	h.Set("X-B3-Flags", "0")
	h.Set("B3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
	h.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	h.Set("Tracestate", "congo=t61rcWkgMzE")
	h.Set("X-Ot-Span-Context", "lightstep-context")
	h.Set("X-Cloud-Trace-Context", "105445aa7843bc8bf206b12000100000/1;o=1")
	h.Set("Grpc-Trace-Bin", "AAARf5KNTEA=")
	h.Set("X-Datadog-Trace-Id", "1234")
	h.Set("X-Datadog-Parent-Id", "5678")
	h.Set("X-Datadog-Sampling-Priority", "1")
	h.Set("Sw8", "1-abc-def")
	h.Set("User-Agent", "bookinfo-test/1.0")
	h.Set("Authorization", "Bearer token")
	h.Set("Jwt", "jwt-value")
	h.Set("Cookie", "theme=dark")
	return h
}

func TestReviewsConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     ReviewsConfig
		wantErr string
	}{
		{"unknown version", ReviewsConfig{Version: "v4"}, `reviews version "v4" is unknown`},
		{"no version", ReviewsConfig{}, `reviews version "" is unknown`},
		{"v2 without ratings", ReviewsConfig{Version: "v2"}, "set RatingsURL"},
		{"negative timeout", ReviewsConfig{Version: "v3", RatingsURL: "http://ratings:9080", RatingsTimeout: -time.Second}, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReviews(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

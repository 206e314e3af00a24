package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// tapLag subscribes to the live stream's tap of service while load runs, and returns how long
// after each request's time its entry arrived, in milliseconds. The sidecar pushes its access
// log once a second and the server batches tap entries every 250 ms, so the lag is mostly
// those two periods.
func tapLag(ctx context.Context, cp *controlPlane, service string, load func() error) ([]float64, error) {
	d := websocket.Dialer{Jar: cp.api.Jar, HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.DialContext(ctx, "ws://"+cp.httpAddr+"/api/v1/live", http.Header{})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("open the live stream: %d: %w", resp.StatusCode, err)
		}
		return nil, fmt.Errorf("open the live stream: %w", err)
	}
	defer conn.Close()
	sub := fmt.Sprintf(`{"type":"subscribe","id":"bench","topic":"tap","params":{"service":%q}}`, service)
	if err := conn.WriteMessage(websocket.TextMessage, []byte(sub)); err != nil {
		return nil, fmt.Errorf("subscribe to the tap: %w", err)
	}
	type message struct {
		Type    string `json:"type"`
		Message string `json:"message"`
		Entries []struct {
			Time time.Time `json:"time"`
		} `json:"entries"`
	}
	lags := make(chan []float64, 1)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		var out []float64
		for {
			_, b, err := conn.ReadMessage()
			now := time.Now()
			if err != nil {
				select {
				case <-done: // closed by the caller after the load
					lags <- out
				default:
					readErr <- fmt.Errorf("read the live stream: %w", err)
				}
				return
			}
			var m message
			if err := json.Unmarshal(b, &m); err != nil {
				readErr <- fmt.Errorf("live stream message %.200s: %w", b, err)
				return
			}
			if m.Type == "error" {
				readErr <- fmt.Errorf("live stream: %s", m.Message)
				return
			}
			for _, e := range m.Entries {
				out = append(out, float64(now.Sub(e.Time).Microseconds())/1000)
			}
		}
	}()
	loadErr := load()
	// Entries of the last requests come up to a push interval and a batch later.
	select {
	case err := <-readErr:
		return nil, err
	case <-time.After(2 * time.Second):
	}
	close(done)
	conn.Close()
	select {
	case out := <-lags:
		if loadErr != nil {
			return nil, loadErr
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("live stream: no tap entry for %s arrived", service)
		}
		return out, nil
	case err := <-readErr:
		if strings.Contains(err.Error(), "use of closed") {
			return nil, fmt.Errorf("live stream: closed before any entry: %w", err)
		}
		return nil, err
	}
}

package ctl

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestAge(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{0, "0s"},
		{-3 * time.Second, "0s"}, // a server clock slightly ahead
		{59 * time.Second, "59s"},
		{119 * time.Second, "119s"},
		{2 * time.Minute, "2m"},
		{5*time.Minute + 30*time.Second, "5m30s"},
		{10 * time.Minute, "10m"},
		{179 * time.Minute, "179m"},
		{3 * time.Hour, "3h"},
		{5*time.Hour + 15*time.Minute, "5h15m"},
		{30 * time.Hour, "30h"},
		{3*24*time.Hour + 4*time.Hour, "3d4h"},
		{5 * 24 * time.Hour, "5d"},
		{400 * 24 * time.Hour, "400d"},
		{3 * 365 * 24 * time.Hour, "3y"},
	}
	for _, tc := range tests {
		if got := age(now.Add(-tc.ago), now); got != tc.want {
			t.Errorf("age(%v ago) = %q, want %q", tc.ago, got, tc.want)
		}
	}
	if got := age(time.Time{}, now); got != "" {
		t.Errorf("age(zero) = %q, want empty", got)
	}
}

func TestWriteTable(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		rows   [][]string
		want   string
	}{
		{
			name:   "columns align with three spaces between",
			header: []string{"NAME", "REVISION", "UPDATED BY", "AGE"},
			rows:   [][]string{{"reviews", "12", "admin", "5m"}, {"productpage", "3", "alice", "2d"}},
			want: "" +
				"NAME          REVISION   UPDATED BY   AGE\n" +
				"reviews       12         admin        5m\n" +
				"productpage   3          alice        2d\n",
		},
		{
			name:   "empty cells show a dash",
			header: []string{"REVISION", "MESSAGE"},
			rows:   [][]string{{"1", ""}},
			want: "" +
				"REVISION   MESSAGE\n" +
				"1          -\n",
		},
		{
			name:   "control characters cannot break a row or reach the terminal",
			header: []string{"A", "B"},
			rows:   [][]string{{"x\ty", "line one\nline two\x1b[31m"}},
			want: "" +
				"A     B\n" +
				"x y   line one line two [31m\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeTable(&b, tc.header, tc.rows); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestPrintObjectsYAML(t *testing.T) {
	items := []json.RawMessage{
		json.RawMessage(`{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"a","namespace":"default","resourceVersion":"7","updatedAt":"2026-01-01T00:00:00Z","updatedBy":"admin"},"spec":{"hosts":["a"],"http":[{"route":[{"destination":{"host":"a"},"weight":100}]}]}}`),
		json.RawMessage(`{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"b","namespace":"default"},"spec":{"hosts":["b"]}}`),
	}
	var b bytes.Buffer
	if err := printObjectsYAML(&b, items); err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: a
  namespace: default
  resourceVersion: "7"
spec:
  hosts:
  - a
  http:
  - route:
    - destination:
        host: a
      weight: 100
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: b
  namespace: default
spec:
  hosts:
  - b
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestOneLineAndTruncate(t *testing.T) {
	if got := oneLine("  a\n\tb  c\r\n"); got != "a b c" {
		t.Errorf("oneLine = %q", got)
	}
	if got := truncate("héllo wörld", 6); got != "héllo…" {
		t.Errorf("truncate = %q", got)
	}
	if got := truncate("short", 6); got != "short" {
		t.Errorf("truncate = %q", got)
	}
}

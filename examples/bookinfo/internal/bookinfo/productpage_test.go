package bookinfo

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"
)

// setup describes a Bookinfo for one test. The zero value is everything up,
// with reviews v2.
type setup struct {
	reviewsVersion string
	// detailsFault and reviewsFault, when set, stand in front of the real
	// handler, like an Istio abort fault.
	detailsFault, reviewsFault *fault
	// reviewsHang makes reviews never answer, like a long Istio delay.
	reviewsHang bool
	// *Down points the caller at a closed port.
	detailsDown, reviewsDown, ratingsDown bool
	// reviewsTimeout overrides productpage's 3 s per try at reviews.
	reviewsTimeout time.Duration
	sessionKey     []byte
}

// bookinfo is a running Bookinfo: each service is its real handler behind
// a loopback server, productpage calls the others by URL, and the recorders
// show what each peer received.
type bookinfo struct {
	details, reviews, ratings *recorder
	pageURL                   string
	// client speaks to productpage like a browser: it keeps cookies and
	// follows redirects.
	client *http.Client
}

func startBookinfo(t *testing.T, s setup) *bookinfo {
	t.Helper()
	logger := testLogger(t)
	b := &bookinfo{}

	b.ratings = record(NewRatings(logger))
	ratingsURL := serve(t, b.ratings)
	reviewsRatingsURL := ratingsURL
	if s.ratingsDown {
		reviewsRatingsURL = downURL(t)
	}

	if s.reviewsVersion == "" {
		s.reviewsVersion = "v2"
	}
	reviewsHandler, err := NewReviews(ReviewsConfig{Version: s.reviewsVersion, RatingsURL: reviewsRatingsURL, Logger: logger})
	if err != nil {
		t.Fatalf("NewReviews: %v", err)
	}
	if s.reviewsFault != nil {
		s.reviewsFault.next, reviewsHandler = reviewsHandler, s.reviewsFault
	}
	if s.reviewsHang {
		reviewsHandler = hang
	}
	b.reviews = record(reviewsHandler)
	reviewsURL := serve(t, b.reviews)
	if s.reviewsDown {
		reviewsURL = downURL(t)
	}

	var detailsHandler = NewDetails(logger)
	if s.detailsFault != nil {
		s.detailsFault.next, detailsHandler = detailsHandler, s.detailsFault
	}
	b.details = record(detailsHandler)
	detailsURL := serve(t, b.details)
	if s.detailsDown {
		detailsURL = downURL(t)
	}

	page, err := NewProductPage(ProductPageConfig{
		DetailsURL:     detailsURL,
		ReviewsURL:     reviewsURL,
		RatingsURL:     ratingsURL,
		ReviewsTimeout: s.reviewsTimeout,
		SessionKey:     s.sessionKey,
		Logger:         logger,
	})
	if err != nil {
		t.Fatalf("NewProductPage: %v", err)
	}
	b.pageURL = serve(t, page)
	b.client = newBrowser(t)
	return b
}

// newBrowser returns a client that keeps cookies and follows redirects.
func newBrowser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatalf("cookie jar: %v", err)
	}
	return &http.Client{Jar: jar, Transport: &http.Transport{}}
}

// page fetches path from productpage and returns status and body.
func (b *bookinfo) page(t *testing.T, path string, header http.Header) (int, string) {
	t.Helper()
	status, body := get(t, b.client, b.pageURL+path, header)
	return status, string(body)
}

// signIn posts the login form as a browser would, following the redirect.
func (b *bookinfo) signIn(t *testing.T, user string) (int, string) {
	t.Helper()
	res, err := b.client.PostForm(b.pageURL+"/login", url.Values{"username": {user}, "passwd": {"password"}})
	if err != nil {
		t.Fatalf("POST /login: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read /login answer: %v", err)
	}
	if res.Request.URL.Path != "/productpage" {
		t.Errorf("after login the browser is at %s, want /productpage", res.Request.URL.Path)
	}
	return res.StatusCode, string(body)
}

func assertContains(t *testing.T, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q", w)
		}
	}
}

func assertLacks(t *testing.T, body string, unwanted ...string) {
	t.Helper()
	for _, u := range unwanted {
		if strings.Contains(body, u) {
			t.Errorf("page has %q, want it absent", u)
		}
	}
}

func TestProductPageRendersEachReviewsVersion(t *testing.T) {
	common := []string{
		"<title>Simple Bookstore App</title>",
		"The Comedy of Errors",
		"Book Details", "PublisherA", "paperback", "1234567890", "123-1234567890",
		"Book Reviews", review1Text, review2Text, "Reviewer1", "Reviewer2",
		`action="/login"`, `name="username"`,
	}
	tests := []struct {
		version string
		want    []string
		lacks   []string
	}{
		{
			version: "v1",
			want:    []string{"Reviews served by: reviews-v1"},
			lacks:   []string{`class="stars"`, "★", MsgReviewRatingUnavailable},
		},
		{
			version: "v2",
			want: []string{"Reviews served by: reviews-v2",
				`style="color: black" data-color="black" aria-label="5 of 5 stars">★★★★★<`,
				`style="color: black" data-color="black" aria-label="4 of 5 stars">★★★★☆<`},
			lacks: []string{"color: red"},
		},
		{
			version: "v3",
			want: []string{"Reviews served by: reviews-v3",
				`style="color: red" data-color="red" aria-label="5 of 5 stars">★★★★★<`,
				`style="color: red" data-color="red" aria-label="4 of 5 stars">★★★★☆<`},
			lacks: []string{"color: black"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			b := startBookinfo(t, setup{reviewsVersion: tt.version})
			status, body := b.page(t, "/productpage", nil)
			if status != http.StatusOK {
				t.Fatalf("status = %d, want 200", status)
			}
			assertContains(t, body, common...)
			assertContains(t, body, tt.want...)
			assertLacks(t, body, tt.lacks...)
			assertLacks(t, body, "Welcome", MsgDetailsUnavailable, MsgReviewsUnavailable)
		})
	}
}

func TestProductPagePeerFailures(t *testing.T) {
	tests := []struct {
		name  string
		setup setup
		// wantReviewsCalls is how often productpage asked reviews; 0 skips
		// the check.
		wantReviewsCalls int
		want, lacks      []string
	}{
		{
			name:  "details down",
			setup: setup{detailsDown: true},
			want:  []string{MsgDetailsUnavailable, "Book Reviews", review1Text},
			lacks: []string{"Book Details", MsgReviewsUnavailable},
		},
		{
			name:  "details aborted with 555",
			setup: setup{detailsFault: &fault{status: 555, n: -1}},
			want:  []string{MsgDetailsUnavailable, "Book Reviews"},
			lacks: []string{"Book Details"},
		},
		{
			name:  "reviews down",
			setup: setup{reviewsDown: true},
			want:  []string{MsgReviewsUnavailable, "Book Details"},
			lacks: []string{"Book Reviews", review1Text, "Reviews served by"},
		},
		{
			name:             "reviews answering 503 twice",
			setup:            setup{reviewsFault: &fault{status: http.StatusServiceUnavailable, n: -1}},
			wantReviewsCalls: 2,
			want:             []string{MsgReviewsUnavailable, "Book Details"},
			lacks:            []string{"Book Reviews"},
		},
		{
			name:             "reviews slower than the timeout, twice",
			setup:            setup{reviewsHang: true, reviewsTimeout: 500 * time.Millisecond},
			wantReviewsCalls: 2,
			want:             []string{MsgReviewsUnavailable, "Book Details"},
			lacks:            []string{"Book Reviews"},
		},
		{
			name:  "ratings down under reviews v2",
			setup: setup{reviewsVersion: "v2", ratingsDown: true},
			want:  []string{"Book Reviews", "<i>" + MsgReviewRatingUnavailable + "</i>", "Reviews served by: reviews-v2"},
			lacks: []string{"★", MsgReviewsUnavailable},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBookinfo(t, tt.setup)
			status, body := b.page(t, "/productpage", nil)
			if status != http.StatusOK {
				t.Errorf("status = %d, want 200: the page always renders", status)
			}
			assertContains(t, body, tt.want...)
			assertLacks(t, body, tt.lacks...)
			if tt.wantReviewsCalls != 0 {
				// A try that timed out on productpage's side can reach reviews after the page.
				for deadline := time.Now().Add(5 * time.Second); b.reviews.calls() < tt.wantReviewsCalls && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
				}
				if got := b.reviews.calls(); got != tt.wantReviewsCalls {
					t.Errorf("reviews calls = %d, want %d", got, tt.wantReviewsCalls)
				}
			}
		})
	}
}

func TestProductPageRetriesReviewsOnce(t *testing.T) {
	// The first try fails, the second reaches the real reviews.
	b := startBookinfo(t, setup{reviewsFault: &fault{status: http.StatusServiceUnavailable, n: 1}})
	_, body := b.page(t, "/productpage", nil)
	assertContains(t, body, "Book Reviews", review1Text, "Reviews served by: reviews-v2")
	assertLacks(t, body, MsgReviewsUnavailable)
	if got := b.reviews.calls(); got != 2 {
		t.Errorf("reviews calls = %d, want 2", got)
	}
	if got := b.details.calls(); got != 1 {
		t.Errorf("details calls = %d, want 1: details gets one try", got)
	}
}

func TestProductPageAPI(t *testing.T) {
	const detailsJSON = `{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,` +
		`"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}`
	const productsJSON = `[{"id":0,"title":"The Comedy of Errors","descriptionHtml":` +
		`"<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: ` +
		`The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and one of ` +
		`his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, ` +
		`in addition to puns and word play."}]`
	tests := []struct {
		name       string
		setup      setup
		path       string
		wantStatus int
		wantJSON   string
	}{
		{"products", setup{}, "/api/v1/products", 200, productsJSON},
		{"details", setup{}, "/api/v1/products/0", 200, detailsJSON},
		{"reviews v2", setup{}, "/api/v1/products/0/reviews", 200,
			reviewsJSON("reviews-v2", `{"stars":5,"color":"black"}`, `{"stars":4,"color":"black"}`)},
		{"reviews v1", setup{reviewsVersion: "v1"}, "/api/v1/products/0/reviews", 200, reviewsJSON("reviews-v1", "", "")},
		{"ratings", setup{}, "/api/v1/products/0/ratings", 200, `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`},
		{"health", setup{}, "/health", 200, `{"status":"Product page is healthy"}`},
		{"details passes 555 through", setup{detailsFault: &fault{status: 555, n: -1}}, "/api/v1/products/0", 555,
			`{"error":"` + MsgDetailsUnavailable + `"}`},
		{"details' 400 passes through", setup{}, "/api/v1/products/abc", 400,
			`{"error":"` + MsgDetailsUnavailable + `"}`},
		{"details down is 500", setup{detailsDown: true}, "/api/v1/products/0", 500,
			`{"error":"` + MsgDetailsUnavailable + `"}`},
		{"reviews 503 after two tries", setup{reviewsFault: &fault{status: 503, n: -1}}, "/api/v1/products/0/reviews", 503,
			`{"error":"` + MsgReviewsUnavailable + `"}`},
		{"reviews down is 500", setup{reviewsDown: true}, "/api/v1/products/0/reviews", 500,
			`{"error":"` + MsgReviewsUnavailable + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBookinfo(t, tt.setup)
			status, body := get(t, b.client, b.pageURL+tt.path, nil)
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d", status, tt.wantStatus)
			}
			assertJSON(t, body, tt.wantJSON)
		})
	}
}

func TestProductPageRatingsAPIWhenRatingsDown(t *testing.T) {
	// productpage calls ratings directly for this endpoint, so point it at a
	// closed port.
	page, err := NewProductPage(ProductPageConfig{
		DetailsURL: downURL(t), ReviewsURL: downURL(t), RatingsURL: downURL(t), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatalf("NewProductPage: %v", err)
	}
	status, body := get(t, http.DefaultClient, serve(t, page)+"/api/v1/products/0/ratings", nil)
	if status != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", status)
	}
	assertJSON(t, body, `{"error":"`+MsgRatingsUnavailable+`"}`)
}

func TestProductPageSignInSendsEndUser(t *testing.T) {
	b := startBookinfo(t, setup{reviewsVersion: "v2"})

	status, body := b.signIn(t, "jason")
	if status != http.StatusOK {
		t.Fatalf("status after login = %d, want 200", status)
	}
	assertContains(t, body, "Welcome jason", `href="/logout"`, "sign out")
	assertLacks(t, body, `action="/login"`)
	for name, rec := range map[string]*recorder{"details": b.details, "reviews": b.reviews, "ratings (through reviews)": b.ratings} {
		if got := rec.last().Get("End-User"); got != "jason" {
			t.Errorf("%s saw end-user %q, want jason", name, got)
		}
	}

	// The API sends it too.
	get(t, b.client, b.pageURL+"/api/v1/products/0/reviews", nil)
	if got := b.reviews.last().Get("End-User"); got != "jason" {
		t.Errorf("reviews saw end-user %q from the API, want jason", got)
	}

	// After signing out, nobody is named.
	status, body = b.page(t, "/logout", nil)
	if status != http.StatusOK {
		t.Fatalf("status after logout = %d, want 200", status)
	}
	assertLacks(t, body, "Welcome")
	assertContains(t, body, `action="/login"`)
	if got := b.reviews.last().Get("End-User"); got != "" {
		t.Errorf("after logout reviews saw end-user %q, want none", got)
	}
}

func TestProductPageSessionCannotBeForged(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	enc := base64.RawURLEncoding
	otherKey := sessions{key: []byte("another key, another productpage")}
	tests := []struct {
		name   string
		header http.Header
	}{
		{"unsigned cookie", http.Header{"Cookie": {"session=" + enc.EncodeToString([]byte("jason"))}}},
		{"wrong signature", http.Header{"Cookie": {"session=" + enc.EncodeToString([]byte("jason")) + "." + enc.EncodeToString(make([]byte, 32))}}},
		{"signed with another key", http.Header{"Cookie": {"session=" + otherKey.encode("jason")}}},
		{"garbage", http.Header{"Cookie": {"session=%%%.!!!"}}},
		{"end-user header without a session", http.Header{"End-User": {"jason"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBookinfo(t, setup{sessionKey: key})
			_, body := b.page(t, "/productpage", tt.header)
			assertLacks(t, body, "Welcome")
			if got := b.reviews.last().Get("End-User"); got != "" {
				t.Errorf("reviews saw end-user %q, want none", got)
			}
		})
	}

	t.Run("a cookie from a replica with the same key works", func(t *testing.T) {
		b := startBookinfo(t, setup{sessionKey: key})
		_, body := b.page(t, "/productpage", http.Header{"Cookie": {"session=" + (sessions{key: key}).encode("jason")}})
		assertContains(t, body, "Welcome jason")
		if got := b.reviews.last().Get("End-User"); got != "jason" {
			t.Errorf("reviews saw end-user %q, want jason", got)
		}
	})
}

func TestProductPageLoginInput(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		header     http.Header
		wantStatus int
	}{
		{"control character", "username=" + url.QueryEscape("jason\r\nX-Evil: 1"), nil, http.StatusBadRequest},
		{"too long", "username=" + strings.Repeat("a", maxUserName+1), nil, http.StatusBadRequest},
		{"body over the bound", "username=jason&pad=" + strings.Repeat("a", maxRequestBody), nil, http.StatusBadRequest},
		{"cross-site form post", "username=jason", http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"empty name signs out", "username=", nil, http.StatusFound},
		{"valid", "username=jason", nil, http.StatusFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBookinfo(t, setup{})
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.pageURL+"/login", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tt.header {
				req.Header[k] = v
			}
			noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			res, err := noRedirect.Do(req)
			if err != nil {
				t.Fatalf("POST /login: %v", err)
			}
			res.Body.Close()
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			signedIn := false
			for _, c := range res.Cookies() {
				if c.Name == sessionCookie && c.Value != "" {
					signedIn = true
				}
			}
			if wantSignedIn := tt.name == "valid"; signedIn != wantSignedIn {
				t.Errorf("signed in = %v, want %v", signedIn, wantSignedIn)
			}
			if res.StatusCode == http.StatusFound && res.Header.Get("Location") != "/productpage" {
				t.Errorf("Location = %q, want /productpage", res.Header.Get("Location"))
			}
		})
	}
}

func TestProductPageEscapesUserName(t *testing.T) {
	b := startBookinfo(t, setup{})
	_, body := b.signIn(t, "<script>alert(1)</script>")
	assertContains(t, body, "Welcome &lt;script&gt;alert(1)&lt;/script&gt;")
	assertLacks(t, body, "<script>alert(1)</script>")
}

func TestProductPagePropagatesHeaders(t *testing.T) {
	tests := []struct {
		path string
		// peers are the services the request reaches, ratings through
		// reviews.
		peers []string
	}{
		{"/productpage", []string{"details", "reviews", "ratings"}},
		{"/api/v1/products/0", []string{"details"}},
		{"/api/v1/products/0/reviews", []string{"reviews", "ratings"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			b := startBookinfo(t, setup{reviewsVersion: "v3"})
			in := traceHeaders()
			in.Set("X-Not-Propagated", "secret")
			get(t, b.client, b.pageURL+tt.path, in)

			recorders := map[string]*recorder{"details": b.details, "reviews": b.reviews, "ratings": b.ratings}
			for _, peer := range tt.peers {
				got := recorders[peer].last()
				if got == nil {
					t.Errorf("%s was not called", peer)
					continue
				}
				for name := range in {
					want := in.Get(name)
					if name == "X-Not-Propagated" {
						want = ""
					}
					if g := got.Get(name); g != want {
						t.Errorf("%s saw %s = %q, want %q", peer, name, g, want)
					}
				}
			}
		})
	}
}

func TestProductPageIndexAndStatic(t *testing.T) {
	b := startBookinfo(t, setup{})
	tests := []struct {
		path        string
		wantStatus  int
		wantType    string
		wantContent string
	}{
		{"/", 200, "text/html; charset=utf-8", `href="/productpage?u=normal"`},
		{"/index.html", 200, "text/html; charset=utf-8", "Simple Bookstore App"},
		{"/static/bookinfo.css", 200, "text/css; charset=utf-8", ".stars"},
		{"/static/missing.css", 404, "", ""},
		{"/no-such-page", 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, err := b.client.Get(b.pageURL + tt.path)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if tt.wantType != "" && res.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", res.Header.Get("Content-Type"), tt.wantType)
			}
			if !strings.Contains(string(body), tt.wantContent) {
				t.Errorf("body lacks %q", tt.wantContent)
			}
		})
	}
}

func TestProductPageIgnoresUnsafeStarColours(t *testing.T) {
	for _, tt := range []struct {
		color, want string
	}{
		{"red", "red"},
		{"red; background: url(http://evil)", "black"},
		{"", "black"},
	} {
		stars := 3
		v := viewReview(Review{Rating: &Rating{Stars: &stars, Color: tt.color}})
		if v.Color != tt.want || v.Stars != "★★★" || v.NoStars != "☆☆" {
			t.Errorf("colour %q: got %q %q%q, want %q ★★★☆☆", tt.color, v.Color, v.Stars, v.NoStars, tt.want)
		}
	}
	tooMany := 9
	if v := viewReview(Review{Rating: &Rating{Stars: &tooMany}}); v.Stars != "★★★★★" || v.NoStars != "" {
		t.Errorf("9 stars drawn as %q%q, want five", v.Stars, v.NoStars)
	}
}

func TestProductPageConfigValidation(t *testing.T) {
	ok := ProductPageConfig{DetailsURL: "http://details:9080", ReviewsURL: "http://reviews:9080", RatingsURL: "http://ratings:9080"}
	tests := []struct {
		name    string
		edit    func(*ProductPageConfig)
		wantErr string
	}{
		{"valid", func(*ProductPageConfig) {}, ""},
		{"no details", func(c *ProductPageConfig) { c.DetailsURL = "" }, "set DetailsURL"},
		{"short key", func(c *ProductPageConfig) { c.SessionKey = []byte("short") }, "at least 16 bytes"},
		{"negative tries", func(c *ProductPageConfig) { c.ReviewsTries = -1 }, "ReviewsTries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			_, err := NewProductPage(cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

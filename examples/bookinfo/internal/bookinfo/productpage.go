package bookinfo

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// ProductPageConfig configures NewProductPage.
type ProductPageConfig struct {
	// DetailsURL, ReviewsURL and RatingsURL are the base URLs of the peers,
	// e.g. "http://details:9080". Required.
	DetailsURL string
	ReviewsURL string
	RatingsURL string
	// DetailsTimeout bounds the one try at details. If zero, 3 s.
	DetailsTimeout time.Duration
	// ReviewsTimeout bounds each try at reviews. If zero, 3 s.
	ReviewsTimeout time.Duration
	// ReviewsTries is how often productpage asks reviews before giving up.
	// If zero, 2: Istio's productpage retries reviews once by itself, which
	// its fault-injection task shows as a 6 s page.
	ReviewsTries int
	// RatingsTimeout bounds the one try at ratings. If zero, 3 s.
	RatingsTimeout time.Duration
	// SessionKey signs the session cookie. If empty, a random key: sessions
	// then last as long as the process, and each replica has its own.
	SessionKey []byte
	// Client calls the peers. If nil, NewClient() is used.
	Client *http.Client
	// Logger logs failed calls to peers. If nil, logs are discarded.
	Logger *slog.Logger
}

// minSessionKey is the shortest session key accepted, in bytes.
const minSessionKey = 16

// provision fills in the defaults of the zero values.
func (c *ProductPageConfig) provision() error {
	// Istio's productpage uses 3 s for every peer and two tries at reviews.
	if c.DetailsTimeout == 0 {
		c.DetailsTimeout = 3 * time.Second
	}
	if c.ReviewsTimeout == 0 {
		c.ReviewsTimeout = 3 * time.Second
	}
	if c.ReviewsTries == 0 {
		c.ReviewsTries = 2
	}
	if c.RatingsTimeout == 0 {
		c.RatingsTimeout = 3 * time.Second
	}
	if len(c.SessionKey) == 0 {
		c.SessionKey = make([]byte, 32)
		if _, err := rand.Read(c.SessionKey); err != nil {
			return fmt.Errorf("generate session key: %w", err)
		}
	}
	if c.Client == nil {
		c.Client = NewClient()
	}
	if c.Logger == nil {
		c.Logger = discardLogger()
	}
	return nil
}

// validate reports what to change in an unusable config.
func (c *ProductPageConfig) validate() error {
	var errs []error
	for _, u := range []struct{ name, value string }{
		{"DetailsURL", c.DetailsURL}, {"ReviewsURL", c.ReviewsURL}, {"RatingsURL", c.RatingsURL},
	} {
		if u.value == "" {
			errs = append(errs, fmt.Errorf("productpage: set %s", u.name))
		}
	}
	if c.DetailsTimeout < 0 || c.ReviewsTimeout < 0 || c.RatingsTimeout < 0 {
		errs = append(errs, errors.New("productpage: timeouts must not be negative"))
	}
	if c.ReviewsTries < 1 {
		errs = append(errs, errors.New("productpage: ReviewsTries must be at least 1"))
	}
	if len(c.SessionKey) < minSessionKey {
		errs = append(errs, fmt.Errorf("productpage: the session key must be at least %d bytes", minSessionKey))
	}
	return errors.Join(errs...)
}

// NewProductPage returns the handler of productpage v1: the web page, the
// sign-in, and the JSON API over details, reviews and ratings.
func NewProductPage(cfg ProductPageConfig) (http.Handler, error) {
	if err := cfg.provision(); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pages, err := template.ParseFS(templateFiles, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("parse productpage templates: %w", err)
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, fmt.Errorf("open productpage static files: %w", err)
	}
	peers := &productPeers{
		details:      peer{client: cfg.Client, baseURL: cfg.DetailsURL, resource: "details", timeout: cfg.DetailsTimeout},
		reviews:      peer{client: cfg.Client, baseURL: cfg.ReviewsURL, resource: "reviews", timeout: cfg.ReviewsTimeout},
		ratings:      peer{client: cfg.Client, baseURL: cfg.RatingsURL, resource: "ratings", timeout: cfg.RatingsTimeout},
		reviewsTries: cfg.ReviewsTries,
		logger:       cfg.Logger,
	}
	mux := http.NewServeMux()
	addProductPageRoutes(mux, cfg.Logger, peers, sessions{key: cfg.SessionKey}, pages, static)
	return withCommon(cfg.Logger, mux), nil
}

// peerReply is what productpage makes of a peer's answer.
type peerReply struct {
	// status is the peer's status, or 500 when the peer did not answer.
	status int
	// body is the peer's JSON for a 200, else {"error": "Sorry, ..."}.
	body []byte
}

func (p peerReply) ok() bool { return p.status == http.StatusOK }

// productPeers calls details, reviews and ratings as Istio's productpage
// does: one try at details and ratings, ReviewsTries at reviews.
type productPeers struct {
	details, reviews, ratings peer
	reviewsTries              int
	logger                    *slog.Logger
}

func (pp *productPeers) fetchDetails(ctx context.Context, id string, h http.Header) peerReply {
	return pp.fetch(ctx, pp.details, 1, id, h, MsgDetailsUnavailable)
}

func (pp *productPeers) fetchReviews(ctx context.Context, id string, h http.Header) peerReply {
	return pp.fetch(ctx, pp.reviews, pp.reviewsTries, id, h, MsgReviewsUnavailable)
}

func (pp *productPeers) fetchRatings(ctx context.Context, id string, h http.Header) peerReply {
	return pp.fetch(ctx, pp.ratings, 1, id, h, MsgRatingsUnavailable)
}

// fetch asks p for product id up to tries times, until it answers 200 with
// JSON. Like Istio's productpage it retries on any failure, and reports the
// status of the last try.
func (pp *productPeers) fetch(ctx context.Context, p peer, tries int, id string, h http.Header, unavailable string) peerReply {
	status := 0
	var err error
	for try := 1; try <= tries; try++ {
		var body []byte
		status, body, err = p.get(ctx, id, h)
		if err == nil {
			if json.Valid(body) {
				return peerReply{status: http.StatusOK, body: body}
			}
			status, err = 0, fmt.Errorf("call %s: answer is not JSON", p.resource)
		}
		if ctx.Err() != nil {
			// The client went away; nobody is waiting for another try.
			break
		}
	}
	pp.logger.LogAttrs(ctx, slog.LevelWarn, "peer unavailable",
		slog.String("peer", p.resource), slog.String("product_id", id),
		slog.Int("status", status), slog.Int("tries", tries), slog.String("error", err.Error()))
	if status == 0 {
		status = http.StatusInternalServerError
	}
	body, _ := marshalJSON(errorBody{Error: unavailable})
	return peerReply{status: status, body: body}
}

// outboundHeaders returns the headers productpage sends to its peers: the
// propagated ones, with end-user set from the session alone. A client cannot
// pick its end-user by sending the header itself; it must sign in.
func outboundHeaders(r *http.Request, user string) http.Header {
	h := forwardHeaders(r.Header)
	h.Del("end-user")
	if user != "" {
		h.Set("end-user", user)
	}
	return h
}

// handleProducts answers GET /api/v1/products.
func handleProducts() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, products)
	}
}

// handlePeerAPI answers GET /api/v1/products/{id}[/reviews|/ratings] with the
// peer's JSON and status, or its error JSON and the peer's status: a details
// fault of 555 shows as 555 here.
func handlePeerAPI(fetch func(context.Context, string, http.Header) peerReply, sess sessions) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		reply := fetch(r.Context(), r.PathValue("id"), outboundHeaders(r, sess.user(r)))
		writeRawJSON(w, reply.status, reply.body)
	}
}

// handleLogin answers POST /login: it signs in the form's username and goes
// back to the product page. An empty username signs out.
func handleLogin(sess sessions) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "Cannot read the sign-in form: send username as a form field.", http.StatusBadRequest)
			return
		}
		user := strings.TrimSpace(r.FormValue("username"))
		if user == "" {
			sess.signOut(w)
			http.Redirect(w, r, "/productpage", http.StatusFound)
			return
		}
		if err := validUserName(user); err != nil {
			http.Error(w, "Cannot sign in: the "+err.Error()+".", http.StatusBadRequest)
			return
		}
		sess.signIn(w, user)
		http.Redirect(w, r, "/productpage", http.StatusFound)
	}
}

// handleLogout answers GET /logout: it signs out and goes back to the
// product page.
func handleLogout(sess sessions) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess.signOut(w)
		http.Redirect(w, r, "/productpage", http.StatusFound)
	}
}

// indexData feeds templates/index.html.
type indexData struct {
	Services []indexService
}

type indexService struct {
	Name, URL string
}

// handleIndex answers GET / with a page that lists the peers and links to
// the product page.
func handleIndex(logger *slog.Logger, pages *template.Template, peers *productPeers) http.HandlerFunc {
	data := indexData{Services: []indexService{
		{Name: "details", URL: peers.details.baseURL},
		{Name: "reviews", URL: peers.reviews.baseURL},
		{Name: "ratings", URL: peers.ratings.baseURL},
	}}
	return func(w http.ResponseWriter, r *http.Request) {
		render(w, r, logger, pages, "index.html", data)
	}
}

// productPageData feeds templates/productpage.html.
type productPageData struct {
	User            string
	Title           string
	DescriptionHTML template.HTML
	// DetailsOK is false when details failed; DetailsError then says so.
	DetailsOK    bool
	Details      []detailRow
	DetailsError string
	// ReviewsOK is false when reviews failed; ReviewsError then says so.
	ReviewsOK    bool
	Reviews      []reviewView
	PodName      string
	ClusterName  string
	ReviewsError string
}

type detailRow struct {
	Label, Value string
}

// reviewView is a review as the page shows it.
type reviewView struct {
	Reviewer, Text string
	// Rated is true when the review has stars to show.
	Rated bool
	// Stars and NoStars are the filled and empty stars, five in all.
	Stars, NoStars string
	Color          string
	StarsLabel     string
	// RatingError replaces the stars when ratings failed.
	RatingError string
}

// handleProductPage answers GET /productpage: the book, its details and its
// reviews, each section replaced by Istio's apology when its peer fails.
// Like Istio's, it asks details, then reviews, and always answers 200.
func handleProductPage(logger *slog.Logger, peers *productPeers, sess sessions, pages *template.Template) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user := sess.user(r)
		h := outboundHeaders(r, user)
		product := products[0]
		id := strconv.Itoa(product.ID)
		data := productPageData{
			User:  user,
			Title: product.Title,
			// The description is our own constant, not user input.
			DescriptionHTML: template.HTML(product.DescriptionHTML),
		}

		details := peers.fetchDetails(r.Context(), id, h)
		if rows, err := detailRows(details); err != nil {
			logger.LogAttrs(r.Context(), slog.LevelDebug, "details not shown", slog.String("error", err.Error()))
			data.DetailsError = MsgDetailsUnavailable
		} else {
			data.DetailsOK, data.Details = true, rows
		}

		reviews := peers.fetchReviews(r.Context(), id, h)
		if doc, err := decodeReviews(reviews); err != nil {
			logger.LogAttrs(r.Context(), slog.LevelDebug, "reviews not shown", slog.String("error", err.Error()))
			data.ReviewsError = MsgReviewsUnavailable
		} else {
			data.ReviewsOK = true
			data.PodName = doc.PodName
			if doc.ClusterName != "null" {
				data.ClusterName = doc.ClusterName
			}
			for _, rv := range doc.Reviews {
				data.Reviews = append(data.Reviews, viewReview(rv))
			}
		}
		render(w, r, logger, pages, "productpage.html", data)
	}
}

// errPeerFailed reports a peer reply that is not a 200.
var errPeerFailed = errors.New("peer failed")

// detailRows turns details' JSON into the rows the page shows.
func detailRows(reply peerReply) ([]detailRow, error) {
	if !reply.ok() {
		return nil, fmt.Errorf("details: %w with status %d", errPeerFailed, reply.status)
	}
	dec := json.NewDecoder(bytes.NewReader(reply.body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode details: %w", err)
	}
	var rows []detailRow
	for _, f := range []struct{ label, key string }{
		{"Author", "author"}, {"Year", "year"}, {"Type", "type"}, {"Pages", "pages"},
		{"Publisher", "publisher"}, {"Language", "language"},
		{"ISBN-10", "ISBN-10"}, {"ISBN-13", "ISBN-13"},
	} {
		if v, ok := doc[f.key]; ok && v != nil {
			rows = append(rows, detailRow{Label: f.label, Value: fmt.Sprint(v)})
		}
	}
	return rows, nil
}

// decodeReviews decodes reviews' JSON.
func decodeReviews(reply peerReply) (ProductReviews, error) {
	var doc ProductReviews
	if !reply.ok() {
		return doc, fmt.Errorf("reviews: %w with status %d", errPeerFailed, reply.status)
	}
	if err := json.Unmarshal(reply.body, &doc); err != nil {
		return doc, fmt.Errorf("decode reviews: %w", err)
	}
	return doc, nil
}

// starColor is the shape of a colour the page accepts from reviews; any
// other value is drawn black, so that a peer cannot inject CSS.
var starColor = regexp.MustCompile(`^[a-z]{1,20}$`)

// maxStars is the number of stars a rating is out of.
const maxStars = 5

// viewReview turns a review into what the page shows.
func viewReview(rv Review) reviewView {
	v := reviewView{Reviewer: rv.Reviewer, Text: rv.Text}
	switch {
	case rv.Rating == nil:
	case rv.Rating.Stars != nil:
		n := min(max(*rv.Rating.Stars, 0), maxStars)
		v.Rated = true
		v.Stars = strings.Repeat("★", n)
		v.NoStars = strings.Repeat("☆", maxStars-n)
		v.StarsLabel = fmt.Sprintf("%d of %d stars", n, maxStars)
		v.Color = "black"
		if starColor.MatchString(rv.Rating.Color) {
			v.Color = rv.Rating.Color
		}
	case rv.Rating.Error != "":
		v.RatingError = rv.Rating.Error
	}
	return v
}

// render executes a page template into a buffer first, so that a template
// error becomes a clean 500 rather than half a page.
func render(w http.ResponseWriter, r *http.Request, logger *slog.Logger, pages *template.Template, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		logger.LogAttrs(r.Context(), slog.LevelError, "render page", slog.String("page", name), slog.String("error", err.Error()))
		http.Error(w, "The page cannot be shown right now. Try again later.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
}

package bookinfo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// ReviewsVersions lists the versions of reviews, in order.
var ReviewsVersions = []string{"v1", "v2", "v3"}

// reviewsFlavour is what tells the versions of reviews apart.
type reviewsFlavour struct {
	// ratings is false for v1, which never calls ratings.
	ratings bool
	// color is the colour of the stars.
	color string
	// timeout bounds the call to ratings. v3's is short: Istio's
	// request-timeouts task relies on the difference.
	timeout time.Duration
}

var reviewsFlavours = map[string]reviewsFlavour{
	"v1": {},
	"v2": {ratings: true, color: "black", timeout: 10 * time.Second},
	"v3": {ratings: true, color: "red", timeout: 2500 * time.Millisecond},
}

// ReviewsConfig configures NewReviews.
type ReviewsConfig struct {
	// Version is "v1", "v2" or "v3". Required.
	Version string
	// PodName is reported as "podname". If empty, "reviews-<Version>".
	PodName string
	// ClusterName is reported as "clustername". If empty, "null", as
	// Istio's reviews reports an unset CLUSTER_NAME.
	ClusterName string
	// RatingsURL is the base URL of ratings, e.g. "http://ratings:9080".
	// Required for v2 and v3; v1 ignores it.
	RatingsURL string
	// RatingsTimeout bounds the call to ratings. If zero, the version's:
	// 10 s for v2, 2.5 s for v3.
	RatingsTimeout time.Duration
	// Client calls ratings. If nil, NewClient() is used.
	Client *http.Client
	// Logger logs failed calls to ratings. If nil, logs are discarded.
	Logger *slog.Logger
}

// provision fills in the defaults of the zero values.
func (c *ReviewsConfig) provision() {
	if c.PodName == "" {
		// Istio reports the pod's hostname; outside Kubernetes the version is
		// what a reader of the page needs to see.
		c.PodName = "reviews-" + c.Version
	}
	if c.ClusterName == "" {
		c.ClusterName = "null"
	}
	if c.RatingsTimeout == 0 {
		c.RatingsTimeout = reviewsFlavours[c.Version].timeout
	}
	if c.Client == nil {
		c.Client = NewClient()
	}
	if c.Logger == nil {
		c.Logger = discardLogger()
	}
}

// validate reports what to change in an unusable config.
func (c *ReviewsConfig) validate() error {
	flavour, ok := reviewsFlavours[c.Version]
	if !ok {
		return fmt.Errorf("reviews version %q is unknown: use one of %v", c.Version, ReviewsVersions)
	}
	if flavour.ratings && c.RatingsURL == "" {
		return fmt.Errorf("reviews %s calls ratings: set RatingsURL", c.Version)
	}
	if c.RatingsTimeout < 0 {
		return errors.New("reviews: RatingsTimeout must not be negative")
	}
	return nil
}

// NewReviews returns the handler of reviews in the configured version.
func NewReviews(cfg ReviewsConfig) (http.Handler, error) {
	cfg.provision()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	flavour := reviewsFlavours[cfg.Version]
	var ratings *peer
	if flavour.ratings {
		ratings = &peer{client: cfg.Client, baseURL: cfg.RatingsURL, resource: "ratings", timeout: cfg.RatingsTimeout}
	}
	mux := http.NewServeMux()
	addReviewsRoutes(mux, cfg.Logger, cfg.PodName, cfg.ClusterName, flavour.color, ratings)
	return withCommon(cfg.Logger, mux), nil
}

// handleReviews answers GET /reviews/{id}. With a nil ratings it puts no
// ratings on the reviews (v1).
func handleReviews(logger *slog.Logger, podName, clusterName, color string, ratings *peer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: MsgNumericID})
			return
		}
		reviews := reviewsOf(id, podName, clusterName)
		if ratings != nil {
			stars, err := fetchStars(r.Context(), *ratings, id, forwardHeaders(r.Header))
			if err != nil {
				logger.LogAttrs(r.Context(), slog.LevelWarn, "ratings unavailable",
					slog.Int("product_id", id), slog.String("error", err.Error()))
			}
			reviews.rate(stars, color)
		}
		writeJSON(w, http.StatusOK, reviews)
	}
}

// fetchStars asks ratings for the stars of product id, by reviewer.
func fetchStars(ctx context.Context, ratings peer, id int, h http.Header) (map[string]int, error) {
	_, body, err := ratings.get(ctx, strconv.Itoa(id), h)
	if err != nil {
		return nil, err
	}
	var doc ProductRatings
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode ratings answer: %w", err)
	}
	if doc.Ratings == nil {
		return nil, errors.New("decode ratings answer: no \"ratings\"")
	}
	return doc.Ratings, nil
}

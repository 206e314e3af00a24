// Package bookinfo implements the four services of Istio's Bookinfo sample —
// productpage, details, reviews and ratings — as net/http handlers, so that
// Sluice's demo and end-to-end tests can run the sample as plain processes.
//
// Paths, JSON shapes, texts, timeouts and retries follow Istio's
// samples/bookinfo, because Sluice's conformance tests compare what a user
// observes against Istio's documentation. The code is our own.
//
// This file holds the domain: the catalogue and the payloads the services
// exchange. It does no I/O.
package bookinfo

import "strconv"

// Texts a user or a test can observe. They are Istio's, word for word, so
// keep them stable.
const (
	// MsgDetailsUnavailable is productpage's text when details fails.
	MsgDetailsUnavailable = "Sorry, product details are currently unavailable for this book."
	// MsgReviewsUnavailable is productpage's text when reviews fails, after
	// both tries.
	MsgReviewsUnavailable = "Sorry, product reviews are currently unavailable for this book."
	// MsgRatingsUnavailable is productpage's text when ratings fails, on
	// /api/v1/products/{id}/ratings.
	MsgRatingsUnavailable = "Sorry, product ratings are currently unavailable for this book."
	// MsgReviewRatingUnavailable is the rating reviews v2 and v3 put on each
	// review when ratings cannot be reached.
	MsgReviewRatingUnavailable = "Ratings service is currently unavailable"
	// MsgNumericID is the 400 error of details (and, here, of reviews)
	// for a product id that is not an integer.
	MsgNumericID = "please provide numeric product id"
	// MsgRatingsNumericID is the 400 error of ratings for a product id that is
	// not an integer. Istio's ratings capitalises "ID", unlike details.
	MsgRatingsNumericID = "please provide numeric product ID"
)

// Product is a book on sale, as listed by productpage's /api/v1/products.
type Product struct {
	ID              int    `json:"id"`
	Title           string `json:"title"`
	DescriptionHTML string `json:"descriptionHtml"`
}

// products is the whole catalogue: Bookinfo sells exactly one book.
var products = []Product{{
	ID:    0,
	Title: "The Comedy of Errors",
	DescriptionHTML: `<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: ` +
		`The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. ` +
		`It is his shortest and one of his most farcical comedies, with a major part of the humour ` +
		`coming from slapstick and mistaken identity, in addition to puns and word play.`,
}}

// BookDetails is the payload of details' GET /details/{id}. The field order
// is the order of Istio's JSON.
type BookDetails struct {
	ID        int    `json:"id"`
	Author    string `json:"author"`
	Year      int    `json:"year"`
	Type      string `json:"type"`
	Pages     int    `json:"pages"`
	Publisher string `json:"publisher"`
	Language  string `json:"language"`
	ISBN10    string `json:"ISBN-10"`
	ISBN13    string `json:"ISBN-13"`
}

// detailsOf returns the details of product id. Every id describes the same
// paperback, as in Istio's details v1.
func detailsOf(id int) BookDetails {
	return BookDetails{
		ID:        id,
		Author:    "William Shakespeare",
		Year:      1595,
		Type:      "paperback",
		Pages:     200,
		Publisher: "PublisherA",
		Language:  "English",
		ISBN10:    "1234567890",
		ISBN13:    "123-1234567890",
	}
}

// ProductRatings is the payload of ratings' GET /ratings/{id}: stars per
// reviewer name.
type ProductRatings struct {
	ID      int            `json:"id"`
	Ratings map[string]int `json:"ratings"`
}

// ratingsOf returns the ratings of product id, the same for every id.
func ratingsOf(id int) ProductRatings {
	return ProductRatings{ID: id, Ratings: map[string]int{"Reviewer1": 5, "Reviewer2": 4}}
}

// ProductReviews is the payload of reviews' GET /reviews/{id}.
type ProductReviews struct {
	// ID is the product id as a string: Istio's reviews quotes it.
	ID string `json:"id"`
	// PodName names the reviews instance that answered; it tells versions
	// apart on the page ("Reviews served by: ...").
	PodName string `json:"podname"`
	// ClusterName is "null" when unset, because Istio's Java service prints
	// its unset variable that way.
	ClusterName string   `json:"clustername"`
	Reviews     []Review `json:"reviews"`
}

// Review is one reviewer's text and, from reviews v2 and v3, their rating.
type Review struct {
	Reviewer string `json:"reviewer"`
	Text     string `json:"text"`
	// Rating is nil for reviews v1, which never calls ratings.
	Rating *Rating `json:"rating,omitempty"`
}

// Rating is either stars in a colour, or an error when ratings failed.
type Rating struct {
	// Stars is a pointer so that a rating of zero stars is still written.
	Stars *int   `json:"stars,omitempty"`
	Color string `json:"color,omitempty"`
	Error string `json:"error,omitempty"`
}

// reviewsOf returns the two fixed reviews of product id, without ratings.
func reviewsOf(id int, podName, clusterName string) ProductReviews {
	return ProductReviews{
		ID:          strconv.Itoa(id),
		PodName:     podName,
		ClusterName: clusterName,
		Reviews: []Review{
			{
				Reviewer: "Reviewer1",
				Text:     "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
			},
			{
				Reviewer: "Reviewer2",
				Text:     "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.",
			},
		},
	}
}

// rate puts a rating on every review: the reviewer's stars in color, or
// MsgReviewRatingUnavailable for a reviewer stars does not name. A nil stars
// map means ratings could not be reached.
func (p *ProductReviews) rate(stars map[string]int, color string) {
	for i := range p.Reviews {
		n, ok := stars[p.Reviews[i].Reviewer]
		if !ok {
			p.Reviews[i].Rating = &Rating{Error: MsgReviewRatingUnavailable}
			continue
		}
		p.Reviews[i].Rating = &Rating{Stars: new(n), Color: color}
	}
}

// errorBody is the JSON body of every error answer: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}

// healthBody is the JSON body of every /health answer.
type healthBody struct {
	Status string `json:"status"`
}

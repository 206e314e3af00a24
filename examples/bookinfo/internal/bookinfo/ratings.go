package bookinfo

import (
	"log/slog"
	"net/http"
	"strconv"
)

// NewRatings returns the handler of ratings v1, which holds the stars each
// reviewer gave. A nil logger discards.
func NewRatings(logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = discardLogger()
	}
	mux := http.NewServeMux()
	addRatingsRoutes(mux)
	return withCommon(logger, mux)
}

// handleRatings answers GET /ratings/{id}.
func handleRatings() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: MsgRatingsNumericID})
			return
		}
		writeJSON(w, http.StatusOK, ratingsOf(id))
	}
}

package bookinfo

import (
	"log/slog"
	"net/http"
	"strconv"
)

// NewDetails returns the handler of details v1, which describes the book.
// A nil logger discards.
func NewDetails(logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = discardLogger()
	}
	mux := http.NewServeMux()
	addDetailsRoutes(mux)
	return withCommon(logger, mux)
}

// handleDetails answers GET /details/{id}.
func handleDetails() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: MsgNumericID})
			return
		}
		writeJSON(w, http.StatusOK, detailsOf(id))
	}
}

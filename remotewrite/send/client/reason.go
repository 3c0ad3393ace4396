package client

import "strings"

// Reasons a receiver gives for refusing series (400, 409, 422), as
// samples_dropped_total's reason label. RefusalReason derives them from
// the answer's text.
const (
	ReasonRefused    = "refused"      // the answer names no known cause
	ReasonTooOld     = "too_old"      // older than the receiver accepts (out of bounds, too old, outside the out-of-order window)
	ReasonOutOfOrder = "out_of_order" // older than the series' newest sample, inside the accepted window
	ReasonDuplicate  = "duplicate"    // same timestamp, another value
	ReasonTooNew     = "too_new"      // too far in the future
	ReasonLimit      = "limit"        // a per-tenant limit (series per tenant or per metric, ...)
	ReasonInvalid    = "invalid"      // the series itself is malformed for the receiver (labels, names, lengths)
)

// RefusalReasons lists every value RefusalReason returns, to initialise
// the counters.
var RefusalReasons = []string{ReasonRefused, ReasonTooOld, ReasonOutOfOrder, ReasonDuplicate, ReasonTooNew, ReasonLimit, ReasonInvalid}

// refusalRule maps a fragment of an answer to a reason. The fragments are
// the receivers' own error identifiers and messages:
//   - Mimir: its documented error IDs (docs "Mimir runbooks", err-mimir-*),
//     e.g. "err-mimir-sample-timestamp-too-old" (the ingester: older than
//     its head, or beyond the out-of-order window; Mimir's globalerror
//     package names no "sample-too-old" or "sample-out-of-bounds" ID, those
//     are its discard reasons), "err-mimir-sample-out-of-order";
//   - Prometheus and Thanos Receive (which use Prometheus's TSDB): the
//     storage errors' texts ("out of bounds", "too old sample",
//     "out of order sample", "duplicate sample for timestamp").
//
// The first rule that matches wins, so the more specific come first.
type refusalRule struct {
	fragment string
	reason   string
}

var refusalRules = []refusalRule{
	{"err-mimir-sample-too-old", ReasonTooOld},
	{"err-mimir-sample-out-of-bounds", ReasonTooOld},
	{"err-mimir-sample-timestamp-too-old", ReasonTooOld},
	{"err-mimir-too-far-in-past", ReasonTooOld},
	{"err-mimir-sample-out-of-order", ReasonOutOfOrder},
	{"err-mimir-sample-duplicate-timestamp", ReasonDuplicate},
	{"err-mimir-too-far-in-future", ReasonTooNew},
	{"err-mimir-max-series-per-user", ReasonLimit},
	{"err-mimir-max-series-per-metric", ReasonLimit},
	{"err-mimir-max-", ReasonLimit},
	{"err-mimir-label", ReasonInvalid},
	{"err-mimir-metric-name", ReasonInvalid},
	{"err-mimir-missing-metric-name", ReasonInvalid},
	{"err-mimir-invalid", ReasonInvalid},
	{"err-mimir-", ReasonInvalid},
	{"out of bounds", ReasonTooOld},
	{"too old", ReasonTooOld},
	{"out of order", ReasonOutOfOrder},
	{"duplicate sample", ReasonDuplicate},
	{"too far in the future", ReasonTooNew},
	{"too far into the future", ReasonTooNew},
	{"limit", ReasonLimit},
	{"invalid label", ReasonInvalid},
	{"invalid metric name", ReasonInvalid},
}

// RefusalReason reads why a receiver refused a request from its answer
// (case-insensitive); "refused" when the text names no known cause. A
// request of several series may be refused for several causes at once:
// the reason is decided for the single series a split isolates, whose
// answer names one cause.
func RefusalReason(body string) string {
	b := strings.ToLower(body)
	for _, r := range refusalRules {
		if strings.Contains(b, r.fragment) {
			return r.reason
		}
	}
	return ReasonRefused
}

package send

import "strings"

// Reasons a receiver gives for refusing series (400, 409, 422), as
// samples_dropped_total's reason label. refusalReason derives them from
// the answer's text.
const (
	reasonTooOld     = "too_old"      // older than the receiver accepts (out of bounds, too old, outside the out-of-order window)
	reasonOutOfOrder = "out_of_order" // older than the series' newest sample, inside the accepted window
	reasonDuplicate  = "duplicate"    // same timestamp, another value
	reasonTooNew     = "too_new"      // too far in the future
	reasonLimit      = "limit"        // a per-tenant limit (series per tenant or per metric, ...)
	reasonInvalid    = "invalid"      // the series itself is malformed for the receiver (labels, names, lengths)
)

// refusalReasons lists every value refusalReason returns, to initialise
// the counters.
var refusalReasons = []string{reasonRefused, reasonTooOld, reasonOutOfOrder, reasonDuplicate, reasonTooNew, reasonLimit, reasonInvalid}

// refusalRule maps a fragment of an answer to a reason. The fragments are
// the receivers' own error identifiers and messages:
//   - Mimir: its documented error IDs (docs "Mimir runbooks", err-mimir-*),
//     e.g. "err-mimir-sample-too-old", "err-mimir-sample-out-of-order";
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
	{"err-mimir-sample-too-old", reasonTooOld},
	{"err-mimir-sample-out-of-bounds", reasonTooOld},
	{"err-mimir-sample-timestamp-too-old", reasonTooOld},
	{"err-mimir-too-far-in-past", reasonTooOld},
	{"err-mimir-sample-out-of-order", reasonOutOfOrder},
	{"err-mimir-sample-duplicate-timestamp", reasonDuplicate},
	{"err-mimir-too-far-in-future", reasonTooNew},
	{"err-mimir-max-series-per-user", reasonLimit},
	{"err-mimir-max-series-per-metric", reasonLimit},
	{"err-mimir-max-", reasonLimit},
	{"err-mimir-label", reasonInvalid},
	{"err-mimir-metric-name", reasonInvalid},
	{"err-mimir-missing-metric-name", reasonInvalid},
	{"err-mimir-invalid", reasonInvalid},
	{"err-mimir-", reasonInvalid},
	{"out of bounds", reasonTooOld},
	{"too old", reasonTooOld},
	{"out of order", reasonOutOfOrder},
	{"duplicate sample", reasonDuplicate},
	{"too far in the future", reasonTooNew},
	{"too far into the future", reasonTooNew},
	{"limit", reasonLimit},
	{"invalid label", reasonInvalid},
	{"invalid metric name", reasonInvalid},
}

// refusalReason reads why a receiver refused a request from its answer
// (case-insensitive); "refused" when the text names no known cause. A
// request of several series may be refused for several causes at once:
// the reason is decided for the single series a split isolates, whose
// answer names one cause.
func refusalReason(body string) string {
	b := strings.ToLower(body)
	for _, r := range refusalRules {
		if strings.Contains(b, r.fragment) {
			return r.reason
		}
	}
	return reasonRefused
}

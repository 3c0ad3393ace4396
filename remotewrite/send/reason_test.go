package send

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRefusalReason(t *testing.T) {
	tests := map[string]string{
		// Mimir (err-mimir-* IDs).
		`failed pushing to ingester: user=a: the sample has been rejected because its timestamp is too old (err-mimir-sample-too-old). The affected sample has timestamp 1970-01-01T00:00:00Z and is from series {__name__="x"}`: reasonTooOld,
		`received a sample whose timestamp is too far in the past (err-mimir-too-far-in-past)`:                                                                                                reasonTooOld,
		`the sample has been rejected because another sample with a more recent timestamp has already been ingested and out-of-order samples are not allowed (err-mimir-sample-out-of-order)`: reasonOutOfOrder,
		`the sample has been rejected because another sample with the same timestamp, but a different value, has already been ingested (err-mimir-sample-duplicate-timestamp)`:                reasonDuplicate,
		`per-user series limit of 10 exceeded (err-mimir-max-series-per-user)`:                                                                                                                reasonLimit,
		`received a sample whose timestamp is too far in the future (err-mimir-too-far-in-future)`:                                                                                            reasonTooNew,
		`received a series with an invalid label: 'a b' (err-mimir-label-invalid)`:                                                                                                            reasonInvalid,
		// Prometheus / Thanos Receive (Prometheus TSDB errors).
		`out of bounds`:                          reasonTooOld,
		`too old sample`:                         reasonTooOld,
		`store: out of order sample`:             reasonOutOfOrder,
		`duplicate sample for timestamp`:         reasonDuplicate,
		`2 errors: conflict; 409: out of bounds`: reasonTooOld,
		// Unknown.
		`answer 400 to request 3`: reasonRefused,
		``:                        reasonRefused,
	}
	for body, want := range tests {
		require.Equal(t, want, refusalReason(body), body)
	}
}

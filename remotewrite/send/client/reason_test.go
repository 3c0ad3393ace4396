package client

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRefusalReason(t *testing.T) {
	tests := map[string]string{
		// Mimir (err-mimir-* IDs).
		`failed pushing to ingester: user=a: the sample has been rejected because its timestamp is too old (err-mimir-sample-too-old). The affected sample has timestamp 1970-01-01T00:00:00Z and is from series {__name__="x"}`: ReasonTooOld,
		`received a sample whose timestamp is too far in the past (err-mimir-too-far-in-past)`:                                                                                                ReasonTooOld,
		`the sample has been rejected because another sample with a more recent timestamp has already been ingested and out-of-order samples are not allowed (err-mimir-sample-out-of-order)`: ReasonOutOfOrder,
		`the sample has been rejected because another sample with the same timestamp, but a different value, has already been ingested (err-mimir-sample-duplicate-timestamp)`:                ReasonDuplicate,
		`per-user series limit of 10 exceeded (err-mimir-max-series-per-user)`:                                                                                                                ReasonLimit,
		`received a sample whose timestamp is too far in the future (err-mimir-too-far-in-future)`:                                                                                            ReasonTooNew,
		`received a series with an invalid label: 'a b' (err-mimir-label-invalid)`:                                                                                                            ReasonInvalid,
		// Prometheus / Thanos Receive (Prometheus TSDB errors).
		`out of bounds`:                          ReasonTooOld,
		`too old sample`:                         ReasonTooOld,
		`store: out of order sample`:             ReasonOutOfOrder,
		`duplicate sample for timestamp`:         ReasonDuplicate,
		`2 errors: conflict; 409: out of bounds`: ReasonTooOld,
		// Unknown.
		`answer 400 to request 3`: ReasonRefused,
		``:                        ReasonRefused,
	}
	for body, want := range tests {
		require.Equal(t, want, RefusalReason(body), body)
	}
}

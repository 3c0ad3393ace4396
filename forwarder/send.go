package forwarder

import (
	"context"
	"time"

	"github.com/kata-containers/kata-monitor/forwarder/scrape"
	"github.com/kata-containers/kata-monitor/remotewrite/series"
)

// pushRound is the push phase of a scheduled round: it converts the
// round's series (push.Builder) and hands them to the appenders in chunks,
// and returns the family metadata to send after the round (nil when
// unchanged).
func (f *Forwarder) pushRound(ctx context.Context, states []*scrape.Target, snap *snapshot, start time.Time) []series.Metadata {
	f.caches = f.caches[:0]
	for _, st := range states {
		f.caches = append(f.caches, st.Cache)
	}
	f.push.SetFamilies(snap.Families())
	c := f.push.Build(f.caches, start.UnixMilli(), func(ss []series.Series) { f.sendSeries(ctx, ss) })
	clear(f.caches)
	f.m.addPush(c)
	return f.push.Metadata(snap.Families())
}

// sendSeries hands one chunk of a round to every appender in turn; a
// failing appender is logged and counted and never stops the others.
func (f *Forwarder) sendSeries(ctx context.Context, ss []series.Series) {
	for i, a := range f.deps.Appenders {
		if err := a.Append(ctx, ss); err != nil {
			f.m.appenderErrors.Inc()
			f.log.Warn("appender rejected round", "appender", i, "series", len(ss), "err", err)
		}
	}
}

// commit ends the round for every appender that gathers it (Committer);
// a failing one is logged and counted like a failing Append.
func (f *Forwarder) commit(ctx context.Context) {
	for i, a := range f.deps.Appenders {
		if c, ok := a.(Committer); ok {
			if err := c.Commit(ctx); err != nil {
				f.m.appenderErrors.Inc()
				f.log.Warn("appender could not commit round", "appender", i, "err", err)
			}
		}
	}
}

// sendMetadata hands the round's metadata to every appender that takes it.
func (f *Forwarder) sendMetadata(md []series.Metadata) {
	for _, a := range f.deps.Appenders {
		if ma, ok := a.(MetadataAppender); ok {
			ma.AppendMetadata(md)
		}
	}
}

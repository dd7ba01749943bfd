package replicate

// Lag compares what peer id is known to hold (its announces and syncs
// since it connected) with what is held here: lag counts the events it
// holds that are not held here (per stream, its offset minus ours where it
// is ahead), behind the events held here it is not known to hold (ours
// minus its, where we are ahead; a stream it never told of counts in
// full). Both are as of the last exchange: a sync with it every
// SyncInterval or so brings them up to date. ok is false if it told
// nothing since it (re)connected.
func (p *Planner) Lag(id PeerID) (lag, behind uint64, ok bool) {
	theirs, ok := p.announced[id]
	if !ok {
		return 0, 0, false
	}
	for s, off := range theirs {
		if have := p.haveOf(s); int64(off) > have {
			lag += uint64(int64(off) - have)
		}
	}
	for s, have := range p.have {
		if off, ok := theirs[s]; !ok {
			behind += uint64(have + 1)
		} else if have > int64(off) {
			behind += uint64(have - int64(off))
		}
	}
	return lag, behind, true
}

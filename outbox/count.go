package outbox

// Count returns how many records of kind ("" for both kinds) are in any of states (every
// state when none is given), from the counters Stats reads, without the rest of Stats (the
// file's size, the disk's free space, the oldest records: a walk of every lease): the
// delivery worker asks after every commit whether anything is left to deliver.
func (o *Outbox) Count(kind Kind, states ...State) int {
	if len(states) == 0 {
		states = allStates
	}
	o.cmu.Lock()
	defer o.cmu.Unlock()
	n := 0
	for _, k := range allKinds {
		if kind != "" && k != kind {
			continue
		}
		kc, _ := kindCode(k)
		for _, s := range states {
			if sc, ok := stateCode(s); ok {
				n += o.cnt.n[kc][sc]
			}
		}
	}
	return n
}

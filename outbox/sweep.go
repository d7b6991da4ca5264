package outbox

import "fmt"

// Sweep deletes confirmed records past Options.Retention now. Claim and Apply sweep on
// their way, but an idle outbox makes neither: a daemon with nothing to send calls Sweep
// on a timer so retention holds there too. Each transaction deletes a bounded number;
// Sweep goes on while the last one was full.
func (o *Outbox) Sweep() error {
	if err := o.acquire(); err != nil {
		return err
	}
	defer o.release()
	for {
		before := o.Stats().ByState[StateConfirmed]
		if err := o.update(func(w *wtx) error { return w.sweep() }); err != nil {
			return fmt.Errorf("outbox: sweep: %w", err)
		}
		// Confirmations committed meanwhile only make this smaller: at worst the
		// next timer tick deletes the rest.
		if before-o.Stats().ByState[StateConfirmed] < sweepLimit {
			return nil
		}
	}
}

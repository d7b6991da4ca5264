package outbox

import bolt "go.etcd.io/bbolt"

// mergeCursor walks the events and findings buckets as one, in record id (that
// is enqueue) order.
type mergeCursor struct {
	a, b           *bolt.Cursor
	ka, va, kb, vb []byte
	lastA          bool
}

func (m *mergeCursor) pick() ([]byte, []byte) {
	switch {
	case m.ka == nil && m.kb == nil:
		return nil, nil
	case m.kb == nil || (m.ka != nil && string(m.ka) < string(m.kb)):
		m.lastA = true
		return m.ka, m.va
	}
	m.lastA = false
	return m.kb, m.vb
}

func (m *mergeCursor) First() ([]byte, []byte) {
	m.ka, m.va = m.a.First()
	m.kb, m.vb = m.b.First()
	return m.pick()
}

func (m *mergeCursor) Seek(k []byte) ([]byte, []byte) {
	m.ka, m.va = m.a.Seek(k)
	m.kb, m.vb = m.b.Seek(k)
	return m.pick()
}

func (m *mergeCursor) Next() ([]byte, []byte) {
	if m.lastA {
		m.ka, m.va = m.a.Next()
	} else {
		m.kb, m.vb = m.b.Next()
	}
	return m.pick()
}

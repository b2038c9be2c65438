package privacy

import (
	"crypto/cipher"
	"fmt"
	"sync"
	"time"
)

// entry is a cached data key, or the knowledge that it was shredded.
type entry struct {
	aead     cipher.AEAD
	shredded bool
	// expires is when PostgreSQL is to be asked again.
	expires time.Time
}

// result is what AEAD returns for the entry.
func (e entry) result(subject string) (cipher.AEAD, error) {
	if e.shredded {
		return nil, fmt.Errorf("data key of %q: %w", subject, ErrShredded)
	}
	return e.aead, nil
}

// cache maps subjects to entries. Its mutex is held only around map
// operations, never across a database call.
type cache struct {
	mu  sync.Mutex
	m   map[string]entry
	max int
}

func (c *cache) get(subject string) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[subject]
	return e, ok
}

// put stores e and returns the entry now cached. A shredded entry is never
// replaced by a key: shredding is final, and a lookup that read the key
// before this process's Shred must not bring it back.
func (c *cache) put(subject string, e entry) entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]entry)
	}
	if old, ok := c.m[subject]; ok {
		if old.shredded && !e.shredded {
			return old
		}
	} else if len(c.m) >= c.max {
		c.shrink(time.Now())
	}
	c.m[subject] = e
	return e
}

// shrink makes room: expired entries go first, then arbitrary ones until a
// tenth of the cache is free, so that a full cache is not shrunk again on
// the next put. Evicting a key costs only a database read later.
func (c *cache) shrink(now time.Time) {
	for s, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, s)
		}
	}
	for s := range c.m {
		if len(c.m) < c.max-c.max/10 {
			break
		}
		delete(c.m, s)
	}
}

func (c *cache) drop(subject string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, subject)
}

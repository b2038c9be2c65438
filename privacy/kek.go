package privacy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// kekSize is the length of a key-encryption key: AES-256.
const kekSize = 32

// KEK is a key-encryption key: it wraps the data keys stored in PostgreSQL.
// It lives in the environment only; the database names it by ID, which is
// derived from the key by a one-way hash so that the stored rows say which
// KEK wrapped them without revealing it.
type KEK struct {
	id   string
	aead cipher.AEAD
}

// ParseKEK reads a KEK given as standard base64 of exactly 32 bytes. Leading
// and trailing white space is ignored (a value from a file or a heredoc ends
// with a newline). Errors describe what is wrong without quoting the value:
// it is a secret.
func ParseKEK(b64 string) (KEK, error) {
	b64 = strings.TrimSpace(b64)
	if b64 == "" {
		return KEK{}, errors.New("parse KEK: empty; want standard base64 of 32 random bytes (openssl rand -base64 32)")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// base64's errors name only the offset of the bad byte.
		return KEK{}, fmt.Errorf("parse KEK: not standard base64 (%w); want 32 random bytes (openssl rand -base64 32)", err)
	}
	if len(key) != kekSize {
		return KEK{}, fmt.Errorf("parse KEK: %d bytes; want %d (AES-256)", len(key), kekSize)
	}
	aead, err := newGCM(key)
	if err != nil {
		return KEK{}, fmt.Errorf("parse KEK: %w", err)
	}
	sum := sha256.Sum256(key)
	return KEK{id: hex.EncodeToString(sum[:])[:16], aead: aead}, nil
}

// ID names the KEK in the payload_keys table: the first 16 hex digits of
// the SHA-256 of the key.
func (k KEK) ID() string { return k.id }

// wrap encrypts a data key for subject. The subject is the additional data,
// so a wrapped key copied to another subject's row does not unwrap.
func (k KEK) wrap(subject string, dataKey []byte) ([]byte, error) {
	if k.aead == nil {
		return nil, errors.New("no KEK: the keyring's current KEK is not set")
	}
	return seal(k.aead, dataKey, []byte(subject))
}

// unwrap decrypts a data key wrapped for subject.
func (k KEK) unwrap(subject string, wrapped []byte) ([]byte, error) {
	if k.aead == nil {
		return nil, errors.New("no KEK: the keyring's KEK is not set")
	}
	return open(k.aead, wrapped, []byte(subject))
}

// Keyring holds the KEKs of a deployment. Current wraps new data keys and is
// the target of Rewrap; Previous KEKs only unwrap, so that a KEK can be
// rotated without downtime: deploy with the new KEK as Current and the old
// one in Previous, run Rewrap, then drop the old one.
type Keyring struct {
	Current  KEK
	Previous []KEK
}

// byID returns the KEK of the ring named id.
func (r Keyring) byID(id string) (KEK, bool) {
	if r.Current.aead != nil && r.Current.id == id {
		return r.Current, true
	}
	for _, k := range r.Previous {
		if k.aead != nil && k.id == id {
			return k, true
		}
	}
	return KEK{}, false
}

// newGCM is AES-GCM with the standard 12-byte nonce and 16-byte tag.
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return aead, nil
}

// seal encrypts plaintext under a fresh random nonce and returns
// nonce || ciphertext || tag.
func seal(aead cipher.AEAD, plaintext, ad []byte) ([]byte, error) {
	ns := aead.NonceSize()
	out := make([]byte, ns, ns+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return aead.Seal(out, out[:ns], plaintext, ad), nil
}

// open reverses seal.
func open(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	ns := aead.NonceSize()
	if len(sealed) < ns+aead.Overhead() {
		return nil, fmt.Errorf("ciphertext of %d bytes is too short", len(sealed))
	}
	plaintext, err := aead.Open(nil, sealed[:ns], sealed[ns:], ad)
	if err != nil {
		// GCM says only "message authentication failed": wrong key, wrong
		// additional data (subject) or tampered data.
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return plaintext, nil
}

package privacy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseKEKNamesTheKeyByItsHash(t *testing.T) {
	raw := []byte(strings.Repeat("k", 32))
	k, err := ParseKEK(base64.StdEncoding.EncodeToString(raw) + "\n")
	require.NoError(t, err)
	sum := sha256.Sum256(raw)
	require.Equal(t, hex.EncodeToString(sum[:])[:16], k.ID())
	require.NotContains(t, k.ID(), hex.EncodeToString(raw)[:16])
}

func TestParseKEKSaysWhatIsWrongWithoutTheValue(t *testing.T) {
	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"not*base64!secret", "not standard base64"},
		{short, "16 bytes; want 32"},
		{base64.URLEncoding.EncodeToString(append([]byte{0xfb, 0xff}, make([]byte, 30)...)), "not standard base64"},
	} {
		_, err := ParseKEK(tc.in)
		require.ErrorContains(t, err, tc.want, "input %q", tc.in)
		if strings.TrimSpace(tc.in) != "" {
			require.NotContains(t, err.Error(), tc.in)
		}
	}
}

func TestWrappedKeyIsBoundToItsSubject(t *testing.T) {
	k := newKEK(t)
	w, err := k.wrap("c1", []byte(strings.Repeat("d", 32)))
	require.NoError(t, err)
	got, err := k.unwrap("c1", w)
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("d", 32), string(got))
	_, err = k.unwrap("c2", w)
	require.ErrorContains(t, err, "authentication failed")
	_, err = newKEK(t).unwrap("c1", w)
	require.Error(t, err)
}

func TestSubjectOf(t *testing.T) {
	for in, want := range map[string]string{
		"journey/c1":               "c1",
		"journey/pat:42@acme.io":   "pat:42@acme.io",
		"journey/":                 SystemSubject,
		"journey":                  SystemSubject,
		"":                         SystemSubject,
		"broadcast/2026-05-01":     SystemSubject,
		"x-journey/c1":             SystemSubject,
		"scheduled-digest-journey": SystemSubject,
	} {
		require.Equal(t, want, SubjectOf(in), "SubjectOf(%q)", in)
	}
}

package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/mod/modfile"
)

// productModule is the module whose directory is the repository root: the
// run's relative paths, its defaults among them, are relative to it.
const productModule = "github.com/acme/lifecycle"

// FindRoot returns the repository root: dir or the nearest directory above
// it whose go.mod declares the product module. The harness is a module of
// its own (tools/bench), so the nearest go.mod alone is not the root.
func FindRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		raw, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && modfile.ModulePath(raw) == productModule {
			return d, nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of %s in %s or above it", productModule, dir)
		}
	}
}

// RootRelative rewrites the paths of c that lie under the working
// directory (the repository root: the command changes into it) relative to
// it, so that the report, the notes and the raw results name no machine's
// absolute paths however the run was invoked.
func (c *Config) RootRelative() {
	for _, p := range []*string{&c.DataDir, &c.WorkerBin, &c.TemporalBin, &c.MailpitBin, &c.Out, &c.ProfileDir} {
		*p = rel(*p)
	}
}

// rel is p relative to the working directory when it lies under it, and p
// unchanged otherwise (a path elsewhere has no shorter honest name).
func rel(p string) string {
	if !filepath.IsAbs(p) {
		return p
	}
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(wd, p); err == nil && filepath.IsLocal(r) {
		return r
	}
	return p
}

package config

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

const composePath = "../docker-compose.yml"

// composeFile is the part of docker-compose.yml the checks below read.
// depends_on and environment come as a list or a mapping, hence any.
type composeFile struct {
	Services map[string]struct {
		Image       string `yaml:"image"`
		Build       any    `yaml:"build"`
		DependsOn   any    `yaml:"depends_on"`
		Environment any    `yaml:"environment"`
		Volumes     []any  `yaml:"volumes"`
	} `yaml:"services"`
}

// TestComposeFile validates docker-compose.yml: with `docker compose config`
// when the compose plugin is installed (it needs no Docker engine), and
// always by reading the YAML: the services exist, every depends_on names a
// service, and the worker is configured with this package's variable names
// and values it accepts.
func TestComposeFile(t *testing.T) {
	data, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatalf("read %s: %v", composePath, err)
	}

	if composePluginAvailable() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "docker", "compose", "-f", composePath, "config", "-q").CombinedOutput()
		if err != nil {
			t.Fatalf("docker compose config -q: %v\n%s", err, out)
		}
	} else {
		t.Log("docker compose plugin not installed: checking the YAML only")
	}

	var f composeFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("parse %s: %v", composePath, err)
	}
	for _, name := range []string{"postgres", "temporal", "temporal-ui", "mailpit", "worker"} {
		if _, ok := f.Services[name]; !ok {
			t.Errorf("service %q is missing", name)
		}
	}
	for name, svc := range f.Services {
		deps, err := composeDependsOn(svc.DependsOn)
		if err != nil {
			t.Errorf("service %s: depends_on: %v", name, err)
		}
		for _, d := range deps {
			if _, ok := f.Services[d]; !ok {
				t.Errorf("service %s depends on %q, which is not a service", name, d)
			}
		}
	}

	// Files mounted from the repository exist (a missing source would be
	// created as an empty directory by Docker, and the service fail oddly).
	for name, svc := range f.Services {
		for _, v := range svc.Volumes {
			short, ok := v.(string)
			if !ok || !strings.HasPrefix(short, "./") {
				continue // named volumes, long syntax
			}
			src := filepath.Join(filepath.Dir(composePath), strings.SplitN(short, ":", 2)[0])
			if _, err := os.Stat(src); err != nil {
				t.Errorf("service %s mounts %s: %v", name, short, err)
			}
		}
	}

	known := composeEnvNames(reflect.TypeOf(Config{}))
	for _, must := range []string{"TEMPORAL_ADDRESS", "DATABASE_URL", "SMTP_HOST", "TIME_SCALE"} {
		if !slices.Contains(known, must) {
			t.Fatalf("config.Config has no field for %s; the list read from its env tags is %v", must, known)
		}
	}
	// The worker and every other service built from this repository.
	for name, svc := range f.Services {
		if name != "worker" && svc.Build == nil {
			continue
		}
		env, err := composeEnvironment(svc.Environment)
		if err != nil {
			t.Errorf("service %s: environment: %v", name, err)
			continue
		}
		if len(env) == 0 {
			t.Errorf("service %s sets no environment", name)
		}
		for k := range env {
			if !slices.Contains(known, k) {
				t.Errorf("service %s sets %s, which the config package does not read (known: %s)",
					name, k, strings.Join(known, " "))
			}
		}
		// With compose's ${VAR:-default} replaced by the default, the
		// configuration must load as the container would see it.
		vars := make(map[string]string, len(env))
		for k, v := range env {
			vars[k] = composeInterpolate(v)
		}
		if _, err := LoadFrom(vars); err != nil {
			t.Errorf("service %s: its environment does not load: %v", name, err)
		}
	}
}

func composePluginAvailable() bool {
	if _, err := exec.LookPath("docker"); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "docker", "compose", "version").Run() == nil
}

// composeEnvNames lists the `env` tags of a struct and of the structs in it.
func composeEnvNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag, ok := f.Tag.Lookup("env"); ok {
			if name, _, _ := strings.Cut(tag, ","); name != "" {
				names = append(names, name)
			}
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			names = append(names, composeEnvNames(f.Type)...)
		}
	}
	sort.Strings(names)
	return names
}

// composeDependsOn reads depends_on in its list or its mapping form.
func composeDependsOn(v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case []any:
		var out []string
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("list entry %v is not a service name", e)
			}
			out = append(out, s)
		}
		return out, nil
	case map[string]any:
		var out []string
		for k := range v {
			out = append(out, k)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected form %T", v)
}

// composeEnvironment reads environment in its mapping or its KEY=value list form.
func composeEnvironment(v any) (map[string]string, error) {
	out := map[string]string{}
	switch v := v.(type) {
	case nil:
	case map[string]any:
		for k, val := range v {
			if val == nil {
				out[k] = ""
				continue
			}
			out[k] = strings.TrimSpace(composeStringify(val))
		}
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("list entry %v is not KEY=value", e)
			}
			k, val, _ := strings.Cut(s, "=")
			out[k] = val
		}
	default:
		return nil, fmt.Errorf("unexpected form %T", v)
	}
	return out, nil
}

func composeStringify(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := yaml.Marshal(v)
	return string(b)
}

var composeVarRe = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}`)

// composeInterpolate replaces ${VAR:-default} and ${VAR-default} with the
// default and ${VAR} with nothing, as compose does when VAR is unset.
func composeInterpolate(s string) string {
	return composeVarRe.ReplaceAllStringFunc(s, func(m string) string {
		return composeVarRe.FindStringSubmatch(m)[1]
	})
}

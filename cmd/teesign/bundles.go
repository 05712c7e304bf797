package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/teesign/teesign/bundle"
	"github.com/teesign/teesign/verify"
)

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// bundlePaths expands --bundle arguments: a file stays, a directory gives
// its *.json files in name order.
func bundlePaths(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		if !isDir(a) {
			out = append(out, a)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(a, "*.json"))
		if err != nil {
			return nil, err
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("--bundle %s: the directory holds no *.json bundle", a)
		}
		sort.Strings(matches)
		out = append(out, matches...)
	}
	return out, nil
}

// bundleOutcome is one file's line in the output of a multi-bundle run.
type bundleOutcome struct {
	File   string         `json:"file"`
	Valid  bool           `json:"valid"`
	Error  string         `json:"error,omitempty"`
	Result *verify.Result `json:"result,omitempty"`
}

// verifyBundles verifies every file with o (whose Cache lets bundles of one
// quote share its checks), on every core, showing progress on a terminal.
func verifyBundles(cmd *cobra.Command, files []string, o verify.Options) error {
	out := make([]bundleOutcome, len(files))
	var bar *progressbar.ProgressBar
	if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar = progressbar.NewOptions(len(files), progressbar.OptionSetWriter(f), progressbar.OptionSetDescription("verifying bundles"),
			progressbar.OptionShowCount(), progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100_000_000))
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = verifyOne(cmd, files[i], o)
				if bar != nil {
					bar.Add(1)
				}
			}
		}()
	}
	for i := range files {
		if cmd.Context().Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := cmd.Context().Err(); err != nil {
		return err
	}
	valid := 0
	for _, r := range out {
		if r.Valid {
			valid++
		}
	}
	hits, misses := o.Cache.Stats()
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	summary := struct {
		Valid          bool            `json:"valid"`
		Bundles        int             `json:"bundles"`
		ValidBundles   int             `json:"valid_bundles"`
		QuotesChecked  int64           `json:"quotes_checked"`
		VerdictsReused int64           `json:"verdicts_reused"`
		Results        []bundleOutcome `json:"results"`
	}{valid == len(out), len(out), valid, misses, hits, out}
	if err := enc.Encode(summary); err != nil {
		return err
	}
	if valid != len(out) {
		return &exitError{code: 1}
	}
	return nil
}

func verifyOne(cmd *cobra.Command, file string, o verify.Options) bundleOutcome {
	r := bundleOutcome{File: file}
	data, err := os.ReadFile(file)
	var b *bundle.Bundle
	if err == nil {
		b, err = bundle.Decode(data)
	}
	if err == nil {
		r.Result, err = verify.VerifyBundle(cmd.Context(), b, o)
	}
	if err != nil {
		var pe *os.PathError
		if !errors.As(err, &pe) {
			err = fmt.Errorf("%s: %w", file, err)
		}
		r.Error = err.Error()
		return r
	}
	r.Valid = r.Result.Valid
	return r
}

// Command load drives a bounded HTTP load against a teesign (or baseline)
// server on loopback and prints throughput and latency percentiles.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/teesign/teesign/bench/loadgen"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:49153", "server address (loopback only)")
	path := flag.String("path", "/sign", "/sign or /sign/batch")
	keyType := flag.String("key-type", "secp256k1", "secp256k1 or ed25519")
	batch := flag.Int("batch", 64, "payloads per /sign/batch request")
	conns := flag.Int("conns", 16, "keep-alive connections")
	rate := flag.Float64("rate", 0, "open loop at this many requests/s (0: closed loop)")
	dur := flag.Duration("duration", 5*time.Second, "run time")
	maxReq := flag.Int64("max-requests", 0, "stop after this many requests (0: no limit)")
	bodyFlag := flag.String("body", "", "request body (default: a sign request built from the flags)")
	asJSON := flag.Bool("json", false, "print the result as JSON")
	flag.Parse()
	body, _ := json.Marshal(map[string]string{"key_type": *keyType, "payload": "benchmark payload 0123456789"})
	if strings.HasSuffix(*path, "/batch") {
		payloads := make([]string, *batch)
		for i := range payloads {
			payloads[i] = fmt.Sprintf("benchmark payload %d", i)
		}
		body, _ = json.Marshal(map[string]any{"key_type": *keyType, "payloads": payloads})
	}
	if *bodyFlag != "" {
		body = []byte(*bodyFlag)
	}
	res, err := loadgen.Run(context.Background(), loadgen.Config{Addr: *addr, Path: *path, Body: body, Conns: *conns, Rate: *rate, Duration: *dur, MaxRequests: *maxReq, Warmup: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	fmt.Println(res)
}

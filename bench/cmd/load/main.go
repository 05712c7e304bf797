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
	distinct := flag.Int("payloads", 64, "distinct payloads that /sign requests cycle through")
	bodyFlag := flag.String("body", "", "request body (default: sign requests built from the flags)")
	asJSON := flag.Bool("json", false, "print the result as JSON")
	flag.Parse()
	batchSize := 0
	if strings.HasSuffix(*path, "/batch") {
		batchSize = *batch
	}
	bodies := loadgen.SignBodies(*keyType, batchSize, *distinct)
	if *bodyFlag != "" {
		bodies = [][]byte{[]byte(*bodyFlag)}
	}
	res, err := loadgen.Run(context.Background(), loadgen.Config{Addr: *addr, Path: *path, Bodies: bodies, Conns: *conns, Rate: *rate, Duration: *dur, MaxRequests: *maxReq, Warmup: time.Second})
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

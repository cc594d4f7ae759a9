// Command median is the Go peer's weighted median, for bench/bench_median.py.
//
// The peer's algorithm: sort the votes by price, accumulate their power in that order, and take
// the price of the first vote whose cumulative power reaches half the total (the lower weighted
// median: the least c with 2c >= total). It reads the ballot from a file of little-endian int64
// pairs (price, power), sorts a fresh copy REPEATS times (the copy is made before the clock
// starts) and prints one JSON line: the median it found and the wall time of each repetition.
//
//	go build -o median median.go && ./median ballot.bin 7
package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"
)

type vote struct {
	price int64
	power int64
}

type byPrice []vote

func (v byPrice) Len() int           { return len(v) }
func (v byPrice) Less(i, j int) bool { return v[i].price < v[j].price }
func (v byPrice) Swap(i, j int)      { v[i], v[j] = v[j], v[i] }

// weightedMedian sorts votes in place and returns the lower weighted median (ok false: no power).
func weightedMedian(votes []vote) (int64, bool) {
	sort.Sort(byPrice(votes))
	var total int64
	for _, v := range votes {
		total += v.power
	}
	if total == 0 {
		return 0, false
	}
	need := total/2 + total%2 // the least c with 2c >= total, without overflow
	var cumulative int64
	for _, v := range votes {
		cumulative += v.power
		if cumulative >= need {
			return v.price, true
		}
	}
	return 0, false
}

func readBallot(path string) ([]vote, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data)%16 != 0 {
		return nil, fmt.Errorf("%s: %d bytes is not a whole number of (price, power) int64 pairs", path, len(data))
	}
	votes := make([]vote, len(data)/16)
	for i := range votes {
		votes[i].price = int64(binary.LittleEndian.Uint64(data[16*i:]))
		votes[i].power = int64(binary.LittleEndian.Uint64(data[16*i+8:]))
	}
	return votes, nil
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: median BALLOT_FILE REPEATS")
		os.Exit(1)
	}
	votes, err := readBallot(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "median:", err)
		os.Exit(1)
	}
	repeats, err := strconv.Atoi(os.Args[2])
	if err != nil || repeats < 1 {
		fmt.Fprintln(os.Stderr, "median: REPEATS must be a positive integer, got", os.Args[2])
		os.Exit(1)
	}
	work := make([]vote, len(votes))
	times := make([]float64, 0, repeats)
	var median int64
	var ok bool
	for r := 0; r < repeats; r++ {
		copy(work, votes)
		start := time.Now()
		median, ok = weightedMedian(work)
		times = append(times, float64(time.Since(start).Nanoseconds())/1e6)
	}
	out := map[string]any{"n": len(votes), "times_ms": times, "median": nil}
	if ok {
		out["median"] = strconv.FormatInt(median, 10) // a string: JSON numbers lose int64 precision
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}

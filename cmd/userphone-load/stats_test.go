package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHistogramQuantilesAreWithinTheBucketWidth(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h histogram
	var all []time.Duration
	for range 100_000 {
		// Log-normal around a millisecond, with a long tail.
		d := time.Duration(math.Exp(r.NormFloat64()*1.5) * float64(time.Millisecond))
		h.record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := h.quantile(q)
		if rel := math.Abs(float64(got-exact)) / float64(exact); rel > 1.0/subBuckets {
			t.Errorf("p%g: %v, exact %v (%.2f%% off)", q*100, got, exact, rel*100)
		}
	}
	if h.quantile(1) != all[len(all)-1] || h.max != all[len(all)-1] || h.n != uint64(len(all)) {
		t.Errorf("max %v / %v, n %d", h.quantile(1), all[len(all)-1], h.n)
	}
	for _, v := range []int64{0, 1, 63, 64, 65, 127, 128, 129, 1 << 20, 1<<42 - 1, 1 << 50} {
		if i := bucketOf(v); bucketHigh(i) < min(v, 1<<maxExp-1) || (i > 0 && bucketHigh(i-1) >= v) {
			t.Errorf("%d: bucket %d holds up to %d", v, i, bucketHigh(i))
		}
	}
}

func TestNumbersAreDistinctValidMobiles(t *testing.T) {
	n := newNumbers(numberRange - 2) // wraps around
	seen := map[string]bool{}
	for range 5 {
		num, err := n.next()
		if err != nil || seen[num] || !strings.HasPrefix(num, "+49176") || len(num) != 14 {
			t.Fatalf("%q, %v", num, err)
		}
		seen[num] = true
	}
}

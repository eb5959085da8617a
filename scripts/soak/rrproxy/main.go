// Command rrproxy spreads a load generator's requests over several
// replicas, round robin, for scripts/soak/soak.sh: the load generator takes
// one URL, and a soak needs the load on every replica.
//
//	rrproxy LISTEN-ADDR REPLICA-URL...
package main

import (
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync/atomic"
)

func main() {
	if len(os.Args) < 3 {
		log.Fatal("usage: rrproxy LISTEN-ADDR REPLICA-URL...")
	}
	var replicas []*httputil.ReverseProxy
	for _, a := range os.Args[2:] {
		u, err := url.Parse(a)
		if err != nil || u.Host == "" {
			log.Fatalf("%q is not a replica's URL, e.g. http://127.0.0.1:8081", a)
		}
		p := httputil.NewSingleHostReverseProxy(u)
		p.Transport = &http.Transport{MaxIdleConnsPerHost: 64}
		replicas = append(replicas, p)
	}
	var n atomic.Uint64
	log.Fatal(http.ListenAndServe(os.Args[1], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		replicas[n.Add(1)%uint64(len(replicas))].ServeHTTP(w, r)
	})))
}

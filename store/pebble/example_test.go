package pebble_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/vigilmq/vigil/store"
	"github.com/vigilmq/vigil/store/pebble"
)

// Open a store, append a change, learn when it is durable, and read the
// state back after a restart.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "vigil-store")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := pebble.Open(dir, pebble.Options{Sync: store.SyncBatch})
	if err != nil {
		log.Fatal(err) // e.g. the directory is in use by another broker
	}
	seq := s.Append(store.PutSession(&store.Session{ClientID: "sensor-1", Expiry: 3600}))
	durable := make(chan error, 1)
	s.Notify(seq, func(err error) { durable <- err }) // a broker sends PUBACK here
	fmt.Println("durable:", <-durable == nil)
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}

	// A restart: open the directory again and load the state.
	s, err = pebble.Open(dir, pebble.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	st, err := s.Load(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sessions:", len(st.Sessions), st.Sessions[0].ClientID)
	// Output:
	// durable: true
	// sessions: 1 sensor-1
}

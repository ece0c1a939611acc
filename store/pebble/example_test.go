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

// A broker that keeps offline queues on disk loads only the head of each
// queue at start and reads the rest in pages as the queue drains.
func ExampleStore_LoadHeads() {
	dir, err := os.MkdirTemp("", "vigil-store")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := pebble.Open(dir, pebble.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	s.Append(store.PutSession(&store.Session{ClientID: "sensor-1", Expiry: 3600}))
	for seq := uint64(1); seq <= 10; seq++ {
		s.Append(store.PutDelivery("sensor-1", &store.Delivery{Seq: seq, QoS: 1,
			Message: &store.Message{Topic: "cmd", Payload: []byte(fmt.Sprint(seq)), QoS: 1}}))
	}

	ctx := context.Background()
	st, err := s.LoadHeads(ctx, 4) // at most 4 queued messages per session in memory
	if err != nil {
		log.Fatal(err)
	}
	sess := st.Sessions[0]
	fmt.Println("loaded:", len(sess.Deliveries), "left on disk:", sess.QueuedLeft)

	// The client drained those: read the next page.
	last := sess.Deliveries[len(sess.Deliveries)-1].Seq
	page, err := s.Deliveries(ctx, "sensor-1", last, 4)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range page {
		fmt.Print(string(d.Message.Payload), " ")
	}
	fmt.Println()
	// Output:
	// loaded: 4 left on disk: 6
	// 5 6 7 8
}

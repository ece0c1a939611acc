package memory_test

import (
	"testing"

	"github.com/vigilmq/vigil/packet"
	"github.com/vigilmq/vigil/store"
	"github.com/vigilmq/vigil/store/memory"
	"github.com/vigilmq/vigil/store/storetest"
)

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		s := memory.New()
		// A restart is a new broker over the same Store.
		return s, func() store.Store { _ = s.Close(); return s }
	})
}

// Load returns copies: changing them does not change the store.
func TestLoadCopies(t *testing.T) {
	s := memory.New()
	m := &store.Message{Topic: "t", Payload: []byte("abc"), QoS: 1}
	m.Props.User = []packet.UserProperty{{Key: "k", Value: "v"}}
	s.Append(store.PutSession(&store.Session{ClientID: "c"}))
	s.Append(store.PutDelivery("c", &store.Delivery{Seq: 1, QoS: 1, SubIDs: []int{1}, Message: m}))
	s.Append(store.PutRetained(m))
	st, err := s.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	d := st.Sessions[0].Deliveries[0]
	d.PacketID = 9
	d.SubIDs[0] = 2
	d.Message.Payload[0] = 'X'
	d.Message.Props.User[0].Key = "changed"
	st.Retained[0].Payload[0] = 'Y'
	st2, _ := s.Load(t.Context())
	d2 := st2.Sessions[0].Deliveries[0]
	if d2.PacketID != 0 || d2.SubIDs[0] != 1 || string(d2.Message.Payload) != "abc" ||
		d2.Message.Props.User[0].Key != "k" || string(st2.Retained[0].Payload) != "abc" {
		t.Fatalf("Load returned shared state: %+v", d2)
	}
}

// A delivery's state change does not write into the caller's record.
func TestStateDoesNotTouchCallerRecord(t *testing.T) {
	s := memory.New()
	d := &store.Delivery{Seq: 1, QoS: 1}
	s.Append(store.PutSession(&store.Session{ClientID: "c"}))
	s.Append(store.PutDelivery("c", d))
	s.Append(store.DeliveryState("c", 1, 5, false))
	if d.PacketID != 0 {
		t.Fatal("DeliveryState changed the appended record")
	}
}

// New's state ends with the process; NewDurable's is meant for a later
// broker (a simulated restart). store.IsDurable tells a broker which.
func TestDurable(t *testing.T) {
	for _, c := range []struct {
		name string
		st   store.Store
		want bool
	}{
		{"New", memory.New(), false},
		{"NewDurable", memory.NewDurable(), true},
		{"no store", nil, false},
	} {
		if got := store.IsDurable(c.st); got != c.want {
			t.Errorf("%s: IsDurable = %v, want %v", c.name, got, c.want)
		}
	}
}

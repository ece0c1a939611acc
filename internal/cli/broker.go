package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigilmq/vigil/broker"
)

func newBrokerCmd() *cobra.Command {
	var listen []string
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the MQTT broker",
		Example: `  vigil broker                          # TCP on :1883
  vigil broker --listen 127.0.0.1:1884`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv := broker.New(broker.Options{})
			errc := make(chan error, len(listen))
			for _, addr := range listen {
				l, err := net.Listen("tcp", addr)
				if err != nil {
					return fmt.Errorf("listen on %s: %w", addr, err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "vigil: listening on %s\n", l.Addr())
				go func() { errc <- srv.Serve(l) }()
			}
			select {
			case <-cmd.Context().Done():
			case err := <-errc:
				if !errors.Is(err, broker.ErrServerClosed) {
					srv.Close()
					return err
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return srv.Shutdown(ctx)
		},
	}
	cmd.Flags().StringArrayVar(&listen, "listen", []string{":1883"}, "TCP address to listen on (repeatable)")
	return cmd
}

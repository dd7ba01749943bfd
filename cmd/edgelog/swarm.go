package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/edgelog/edgelog/internal/atomicfile"
)

// swarmKeyHeader starts a libp2p pre-shared key file, version 1, hex.
const swarmKeyHeader = "/key/swarm/psk/1.0.0/\n/base16/\n"

// newSwarmKey returns a fresh 256-bit pre-shared key in libp2p's PSK v1
// file format.
func newSwarmKey() ([]byte, error) {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("swarm key: %w", err)
	}
	return []byte(swarmKeyHeader + hex.EncodeToString(key[:]) + "\n"), nil
}

// writeSwarmKey writes key to path with mode 0600. Without force it never
// replaces an existing file; with force it replaces it atomically.
func writeSwarmKey(path string, key []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists; use --force to replace it (nodes with the old key can then no longer connect)", path)
		}
		if err != nil {
			return fmt.Errorf("swarm key: %w", err)
		}
		_, err = f.Write(key)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return fmt.Errorf("swarm key: %w", err)
		}
		return nil
	}
	if err := atomicfile.Write(path, key, 0o600); err != nil {
		return fmt.Errorf("swarm key: %w", err)
	}
	return nil
}

func (a *app) swarmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "swarm",
		Short: "Manage private swarms",
		Args:  groupArgs,
		RunE:  groupRun,
	}
	var force bool
	keygen := &cobra.Command{
		Use:   "keygen [FILE]",
		Short: "Write a new swarm key (pre-shared key) for a private swarm",
		Long: `Write a new random swarm key, a libp2p pre-shared key (PSK v1), to FILE
(mode 0600), or to standard output without FILE. Give every node of the swarm
the same file with --swarm-key FILE (EDGELOG_SWARM_KEY, replication.swarmKey):
they then replicate over TCP only, and nodes without the key cannot connect.
An existing FILE is never replaced without --force.`,
		Args: argsUsage(cobra.MaximumNArgs(1)),
		RunE: func(_ *cobra.Command, args []string) error {
			key, err := newSwarmKey()
			if err != nil {
				return err
			}
			if len(args) == 0 || args[0] == "-" {
				_, err := a.stdout.Write(key)
				return err
			}
			if err := writeSwarmKey(args[0], key, force); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stderr, "edgelog: wrote swarm key %s\n", args[0])
			return err
		},
	}
	keygen.Flags().BoolVar(&force, "force", false, "replace FILE if it exists")
	cmd.AddCommand(keygen)
	return cmd
}

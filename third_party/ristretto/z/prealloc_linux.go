// edgelog addition (see ../PATCHES.md).

package z

import (
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// preallocate allocates the blocks of fd's first size bytes, so that writes
// through a mapping of them cannot fault for want of space. Value logs are
// left sparse: Badger creates them at twice their size and truncates them
// when full, so allocating them would take that space at once. A
// filesystem that cannot allocate ahead keeps the file sparse, as before.
func preallocate(fd *os.File, size int64) error {

	if strings.HasSuffix(fd.Name(), ".vlog") {
		return nil
	}
	for {
		err := unix.Fallocate(int(fd.Fd()), 0, 0, size)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EINVAL):
			return nil
		default:
			return err
		}
	}
}

/* vfs: litecast's SQLite VFS, the default one with a single addition: a database's
 * checkpoint lock can be held across several calls (pinned), so that between moving our
 * read mark and back-filling what it allows, no other process's checkpoint (the app's
 * automatic one, run inside its commit) can start and make the app pay for it.
 * Single-threaded: pins are taken and released on the sync loop's thread. */
#ifndef LC_VFS_H
#define LC_VFS_H

#include <sqlite3.h>

#define LC_VFS_NAME "litecast"

/* Register the VFS (not as the default). 0, or LC_EIO. */
int lc_vfs_register(void);
/* Take the checkpoint lock of c's main database for this process; our own connections'
 * checkpoints on that database then run under it. c must have read the database in WAL
 * mode (its wal-index is mapped). 0, LC_EBUSY (another connection is checkpointing) or
 * LC_EINVAL (not our VFS, no wal-index yet, or a pin is already held). */
int lc_vfs_ckpt_pin(sqlite3 *c);
/* Release the pin, if any. */
void lc_vfs_ckpt_unpin(void);

#endif

/* vfs: the default SQLite VFS wrapped, every method passed through, except that the
 * checkpoint lock (byte WAL_CKPT_LOCK = 1 of the wal-index locks, walformat.html §2.3)
 * can be pinned. While a database is pinned, the real lock is held by the pinning
 * connection, and any of our connections to that database that asks for it exclusively
 * (a checkpoint) is told it has it; its release is a no-op. Other processes get
 * SQLITE_BUSY, which a PASSIVE checkpoint (the app's autocheckpoint) takes as "someone
 * else is checkpointing" and returns at once. Our checkpoints never overlap (one thread),
 * so the lock still excludes every other checkpointer. A request for a range of locks
 * that includes the checkpoint lock (recovery) is refused while pinned. */
#include "vfs.h"

#include <string.h>

#include "util.h"

#define CKPT_LOCK 1

struct vfile {
    sqlite3_file base;
    const char *name;    /* SQLite's full path; valid until xClose */
    int shm_mapped;      /* xShmMap succeeded: the wal-index locks can be used */
    sqlite3_file real[]; /* the default VFS's file, szOsFile bytes */
};

static sqlite3_vfs g_vfs;
static sqlite3_vfs *g_real;
static struct vfile *g_pin; /* the connection holding the pinned lock, or NULL */

#define REAL(f) (((struct vfile *)(f))->real)
#define RM(f) (REAL(f)->pMethods)

static int same_db(const struct vfile *a, const struct vfile *b)
{
    return a->name && b->name && strcmp(a->name, b->name) == 0;
}

static int x_close(sqlite3_file *f)
{
    if (g_pin == (struct vfile *)f)
        lc_vfs_ckpt_unpin();
    return RM(f)->xClose(REAL(f));
}
static int x_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    return RM(f)->xRead(REAL(f), b, n, o);
}
static int x_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    return RM(f)->xWrite(REAL(f), b, n, o);
}
static int x_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return RM(f)->xTruncate(REAL(f), size);
}
static int x_sync(sqlite3_file *f, int flags)
{
    return RM(f)->xSync(REAL(f), flags);
}
static int x_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return RM(f)->xFileSize(REAL(f), size);
}
static int x_lock(sqlite3_file *f, int l)
{
    return RM(f)->xLock(REAL(f), l);
}
static int x_unlock(sqlite3_file *f, int l)
{
    return RM(f)->xUnlock(REAL(f), l);
}
static int x_check_reserved(sqlite3_file *f, int *out)
{
    return RM(f)->xCheckReservedLock(REAL(f), out);
}
static int x_file_control(sqlite3_file *f, int op, void *arg)
{
    return RM(f)->xFileControl(REAL(f), op, arg);
}
static int x_sector_size(sqlite3_file *f)
{
    return RM(f)->xSectorSize(REAL(f));
}
static int x_device_chars(sqlite3_file *f)
{
    return RM(f)->xDeviceCharacteristics(REAL(f));
}
static int x_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    int rc = RM(f)->xShmMap(REAL(f), pg, pgsz, extend, pp);
    if (rc == SQLITE_OK && *pp)
        ((struct vfile *)f)->shm_mapped = 1;
    return rc;
}
static int x_shm_lock(sqlite3_file *f, int ofst, int n, int flags)
{
    struct vfile *p = (struct vfile *)f;
    if (g_pin && ofst <= CKPT_LOCK && ofst + n > CKPT_LOCK && same_db(p, g_pin)) {
        if (n == 1 && (flags & SQLITE_SHM_EXCLUSIVE))
            return SQLITE_OK; /* held for us by the pin; its unlock is the unpin */
        return SQLITE_BUSY;
    }
    return RM(f)->xShmLock(REAL(f), ofst, n, flags);
}
static void x_shm_barrier(sqlite3_file *f)
{
    RM(f)->xShmBarrier(REAL(f));
}
static int x_shm_unmap(sqlite3_file *f, int del)
{
    if (g_pin == (struct vfile *)f)
        lc_vfs_ckpt_unpin();
    ((struct vfile *)f)->shm_mapped = 0;
    return RM(f)->xShmUnmap(REAL(f), del);
}
static int x_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp)
{
    return RM(f)->xFetch(REAL(f), o, n, pp);
}
static int x_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
    return RM(f)->xUnfetch(REAL(f), o, p);
}

static const sqlite3_io_methods g_io = {
    3,           x_close,          x_read,         x_write,         x_truncate,
    x_sync,      x_file_size,      x_lock,         x_unlock,        x_check_reserved,
    x_file_control, x_sector_size, x_device_chars, x_shm_map,       x_shm_lock,
    x_shm_barrier, x_shm_unmap,    x_fetch,        x_unfetch,
};

static int x_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    struct vfile *p = (struct vfile *)f;
    (void)vfs;
    memset(p, 0, sizeof(*p));
    int rc = g_real->xOpen(g_real, name, p->real, flags, out);
    if (rc != SQLITE_OK) {
        /* base.pMethods stays NULL, so SQLite will not call our xClose: close here */
        if (p->real->pMethods)
            p->real->pMethods->xClose(p->real);
        return rc;
    }
    if (!p->real->pMethods)
        return SQLITE_CANTOPEN;
    if (p->real->pMethods->iVersion < 3) {
        p->real->pMethods->xClose(p->real);
        return SQLITE_CANTOPEN;
    }
    p->name = (flags & SQLITE_OPEN_MAIN_DB) ? name : NULL;
    p->base.pMethods = &g_io;
    return SQLITE_OK;
}

int lc_vfs_register(void)
{
    if (g_real)
        return 0;
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real)
        return LC_EIO;
    g_vfs = *real;
    g_vfs.pNext = NULL;
    g_vfs.zName = LC_VFS_NAME;
    g_vfs.szOsFile = (int)sizeof(struct vfile) + real->szOsFile;
    g_vfs.xOpen = x_open;
    g_real = real;
    if (sqlite3_vfs_register(&g_vfs, 0) != SQLITE_OK) {
        g_real = NULL;
        return LC_EIO;
    }
    return 0;
}

int lc_vfs_ckpt_pin(sqlite3 *c)
{
    sqlite3_file *f = NULL;
    if (g_pin || sqlite3_file_control(c, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK ||
        !f || f->pMethods != &g_io)
        return LC_EINVAL;
    struct vfile *p = (struct vfile *)f;
    if (!p->shm_mapped || !p->name)
        return LC_EINVAL; /* no wal-index yet: nothing to lock */
    if (RM(f)->xShmLock(REAL(f), CKPT_LOCK, 1, SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE) !=
        SQLITE_OK)
        return LC_EBUSY;
    g_pin = p;
    return 0;
}

void lc_vfs_ckpt_unpin(void)
{
    struct vfile *p = g_pin;
    if (!p)
        return;
    g_pin = NULL;
    (void)RM(p)->xShmLock(REAL(p), CKPT_LOCK, 1, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE);
}

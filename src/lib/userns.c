/* userns.c — validation and writing of sandbox uid/gid maps (userns.h). */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "userns.h"
#include "util.h"

int userns_map_validate(const struct userns_map *map, struct pbox_error *err)
{
        if (map->count == 0)
                return pbox_error_set(err, EINVAL, "uid_count must be at least 1");
        if (map->uid_base == 0 || map->gid_base == 0)
                return pbox_error_set(err, EINVAL, "uid_base/gid_base must not be 0: sandbox root must not be host root");
        if ((uint64_t) map->uid_base + map->count > UINT32_MAX ||
            (uint64_t) map->gid_base + map->count > UINT32_MAX)
                return pbox_error_set(err, ERANGE, "uid/gid range overflows 32 bits");
        return 0;
}

static int write_map(pid_t pid, const char *file, unsigned long base, unsigned long count,
                     struct pbox_error *err)
{
        char path[64], line[64];
        snprintf(path, sizeof path, "/proc/%d/%s", (int) pid, file);
        int n = snprintf(line, sizeof line, "0 %lu %lu\n", base, count);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return pbox_error_sys(err, errno, "open %s", path);
        if (write(fd, line, (size_t) n) != n)
                return pbox_error_sys(err, errno, "write %s", path);
        return 0;
}

int userns_write_maps(pid_t pid, const struct userns_map *map, struct pbox_error *err)
{
        int r = write_map(pid, "uid_map", map->uid_base, map->count, err);
        if (r < 0)
                return r;
        return write_map(pid, "gid_map", map->gid_base, map->count, err);
}

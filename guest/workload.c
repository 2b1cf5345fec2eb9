/*
 * Vigil guest workload: a small static program that tests observe from outside.
 *
 *  - writer thread: writes a strictly increasing counter to the raw disk
 *    (default /dev/vda) with O_DIRECT|O_DSYNC plus fdatasync after every write,
 *    alternating between two checksummed 4 KiB slots (offsets 0 and 4096), so a
 *    torn write can only lose the value that was never acknowledged as flushed.
 *    At start it reads both slots back and continues after the larger valid one.
 *  - HTTP server on port 80 (single-threaded poll loop): GET / returns JSON with
 *    boot_id, counter, flushed, uptime_ms, ...; GET /dirty?rate=R&mem=M changes
 *    the memory dirtier; see guest/README.md for the whole API.
 *  - dirtier thread: dirties R MiB/s (one write per 4 KiB page, round robin)
 *    over a working set of M MiB, for live-migration tests.
 *  - ACPI power button (/dev/input/event*, KEY_POWER): stops the writer after
 *    its current flush, syncs and powers off.
 *
 * Configuration: kernel command line (vigil.name=, vigil.dirty=, vigil.dirtymem=,
 * vigil.write_ms=, vigil.disk=, vigil.port=), overridable by argv for host tests:
 *   workload [--disk PATH] [--port N] [--name NAME] [--dirty R] [--dirtymem M]
 *            [--write-ms N] [--no-poweroff]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define SLOT_SIZE 4096
#define MAGIC "VIGILCT1"
#define MAX_CLIENTS 128
#define MAX_EVDEV 16
#define REQ_MAX 4096
#define RESP_MAX 2048

/* ---- configuration ---- */
static char cfg_name[64] = "guest";
static char cfg_disk[256] = "/dev/vda";
static char cfg_ip[64] = "";
static int cfg_port = 80;
static int cfg_poweroff = 1;

/* ---- shared state ---- */
static char boot_id[64] = "unknown";
static _Atomic uint64_t counter;       /* value being (or last) written */
static _Atomic uint64_t flushed;       /* last value whose fdatasync returned 0 */
static _Atomic uint64_t start_counter; /* value read back from disk at start */
static _Atomic uint64_t writes_ok;
static _Atomic uint64_t write_errors;
static _Atomic int last_write_errno;
static _Atomic int disk_ok;            /* 1 when the disk is open */
static _Atomic int write_ms = 20;      /* pause between writes */
static _Atomic int stop_writer;
static _Atomic int writer_stopped;
static _Atomic uint64_t last_write_us; /* duration of the last write+flush */

static _Atomic int dirty_rate;         /* MiB/s */
static _Atomic int dirty_mem = 64;     /* MiB working set */
static _Atomic uint64_t dirtied_pages;
static _Atomic uint64_t dirty_mismatches; /* pages that did not hold the value last written */
static _Atomic int dirty_mem_actual;   /* MiB currently mapped */
static char dirty_error[96];           /* last dirtier error, "" if none */

static uint64_t http_ready_ms;
static _Atomic uint64_t http_requests;

static uint64_t now_ms(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void logmsg(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
    buf[n++] = '\n';
    char line[600];
    int m = snprintf(line, sizeof line, "[workload %llu.%03llu] ",
                     (unsigned long long)(now_ms(CLOCK_BOOTTIME) / 1000),
                     (unsigned long long)(now_ms(CLOCK_BOOTTIME) % 1000));
    memcpy(line + m, buf, n);
    if (write(2, line, m + n) < 0) { /* nothing to do */ }
}

/* ---- crc32 (IEEE) ---- */
static uint32_t crc_table[256];
static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}
static uint32_t crc32(const void *p, size_t n) {
    const uint8_t *b = p;
    uint32_t c = 0xFFFFFFFFu;
    while (n--) c = crc_table[(c ^ *b++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* On-disk slot (little endian, the guest is x86-64). */
struct slot {
    char magic[8];
    uint64_t counter;
    uint64_t uptime_ms;
    char boot_id[40];
    char name[32];
    uint32_t crc; /* crc32 of everything before this field */
} __attribute__((packed));

static int slot_valid(const struct slot *s) {
    return memcmp(s->magic, MAGIC, 8) == 0 &&
           s->crc == crc32(s, offsetof(struct slot, crc));
}

/* ---- writer ---- */
static int disk_fd = -1;

static int open_disk(void) {
    int fd = open(cfg_disk, O_RDWR | O_DIRECT | O_DSYNC | O_CLOEXEC);
    if (fd < 0 && errno == EINVAL) /* tmpfs and friends: no O_DIRECT */
        fd = open(cfg_disk, O_RDWR | O_DSYNC | O_CLOEXEC);
    return fd;
}

static void *writer_main(void *arg) {
    (void)arg;
    void *buf;
    if (posix_memalign(&buf, SLOT_SIZE, 2 * SLOT_SIZE) != 0) abort();
    for (;;) { /* wait for the disk (it may appear late or be absent) */
        disk_fd = open_disk();
        if (disk_fd >= 0) break;
        static int warned;
        if (!warned++) logmsg("cannot open %s: %s (retrying)", cfg_disk, strerror(errno));
        if (stop_writer) { writer_stopped = 1; return NULL; }
        usleep(200000);
    }
    uint64_t best = 0;
    ssize_t r = pread(disk_fd, buf, 2 * SLOT_SIZE, 0);
    if (r == 2 * SLOT_SIZE) {
        for (int i = 0; i < 2; i++) {
            struct slot *s = (struct slot *)((char *)buf + i * SLOT_SIZE);
            if (slot_valid(s)) {
                logmsg("slot %d: counter %llu (boot %.36s)", i, (unsigned long long)s->counter, s->boot_id);
                if (s->counter > best) best = s->counter;
            } else {
                logmsg("slot %d: empty or torn", i);
            }
        }
    } else {
        logmsg("read of slots failed: %s", r < 0 ? strerror(errno) : "short read");
    }
    start_counter = best;
    counter = best;
    flushed = best;
    disk_ok = 1;
    logmsg("disk %s: continuing after counter %llu", cfg_disk, (unsigned long long)best);

    uint64_t n = best;
    while (!stop_writer) {
        n = counter + 1;
        memset(buf, 0, SLOT_SIZE);
        struct slot *s = buf;
        memcpy(s->magic, MAGIC, 8);
        s->counter = n;
        s->uptime_ms = now_ms(CLOCK_BOOTTIME);
        snprintf(s->boot_id, sizeof s->boot_id, "%.39s", boot_id);
        snprintf(s->name, sizeof s->name, "%.31s", cfg_name);
        s->crc = crc32(s, offsetof(struct slot, crc));
        uint64_t t0 = now_us();
        for (;;) {
            counter = n;
            ssize_t w = pwrite(disk_fd, buf, SLOT_SIZE, (off_t)(n % 2) * SLOT_SIZE);
            int rc = w == SLOT_SIZE ? fdatasync(disk_fd) : -1;
            if (rc == 0) break;
            int e = w < 0 || rc < 0 ? errno : EIO;
            write_errors++;
            last_write_errno = e;
            if (write_errors < 10 || write_errors % 100 == 0)
                logmsg("write of %llu failed: %s", (unsigned long long)n, strerror(e));
            if (stop_writer) goto out;
            usleep(100000);
        }
        last_write_us = now_us() - t0;
        flushed = n;
        writes_ok++;
        int ms = write_ms;
        if (ms > 0) usleep((useconds_t)ms * 1000);
    }
out:
    logmsg("writer stopped: counter %llu flushed %llu", (unsigned long long)counter, (unsigned long long)flushed);
    writer_stopped = 1;
    return NULL;
}

/* ---- dirtier ---- */
static long mem_available_mib(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[128];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb / 1024;
}

static void *dirtier_main(void *arg) {
    (void)arg;
    char *mem = NULL;
    size_t mapped = 0, npages = 0, idx = 0, clamped_from = 0;
    uint64_t last = now_us();
    double credit = 0;
    /* Every page of the working set holds the stamp of the last cycle that wrote it;
       before writing a page, check it still holds that value (prev). A mismatch means
       a write was lost, e.g. a page not re-sent by a live migration. */
    uint8_t stamp = 1, prev = 0;
    for (;;) {
        usleep(10000);
        uint64_t t = now_us();
        double dt = (t - last) / 1e6;
        last = t;
        int rate = dirty_rate;
        size_t want = (size_t)(dirty_mem > 0 ? dirty_mem : 0) << 20;
        if (rate <= 0 || want == 0) {
            credit = 0;
            if (mem && want != mapped) { munmap(mem, mapped); mem = NULL; mapped = 0; dirty_mem_actual = 0; clamped_from = 0; }
            continue;
        }
        if (want != mapped && want != clamped_from) {
            if (mem) { munmap(mem, mapped); mem = NULL; mapped = 0; }
            /* Never let the working set push the guest into the OOM killer:
               cap it to MemAvailable minus a margin, and say so. */
            long avail = mem_available_mib();
            size_t req = want;
            if (avail >= 0 && (long)(want >> 20) > avail - 24) {
                long cap = avail - 24 > 0 ? avail - 24 : 0;
                snprintf(dirty_error, sizeof dirty_error, "working set capped to %ld MiB (MemAvailable %ld MiB)", cap, avail);
                logmsg("dirtier: %s", dirty_error);
                want = (size_t)cap << 20;
                clamped_from = req;
                if (want == 0) { dirty_mem_actual = 0; continue; }
            } else {
                clamped_from = 0;
            }
            mem = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (mem == MAP_FAILED) {
                snprintf(dirty_error, sizeof dirty_error, "cannot map %zu MiB: %s", want >> 20, strerror(errno));
                logmsg("dirtier: %s", dirty_error);
                mem = NULL; mapped = 0; dirty_mem_actual = 0;
                dirty_mem = 0;
                continue;
            }
            mapped = want;
            npages = want / 4096;
            idx = 0;
            stamp = 1;
            prev = 0;
            dirty_mem_actual = (int)(want >> 20);
            if (!clamped_from) dirty_error[0] = 0;
            logmsg("dirtier: %d MiB/s over %zu MiB", rate, want >> 20);
        }
        if (!mem) continue;
        if (dt > 0.5) dt = 0.5; /* after a pause (migration, SIGSTOP) don't burst */
        credit += dt * rate * 256.0; /* pages */
        size_t todo = (size_t)credit;
        credit -= todo;
        for (size_t i = 0; i < todo; i++) {
            volatile uint8_t *pg = (volatile uint8_t *)mem + idx * 4096;
            if (pg[0] != prev || pg[2048] != prev) {
                if (dirty_mismatches++ < 10)
                    logmsg("dirtier: page %zu holds %u/%u, expected %u (lost write)", idx, pg[0], pg[2048], prev);
            }
            pg[0] = stamp;
            pg[2048] = stamp;
            if (++idx == npages) { idx = 0; prev = stamp; stamp = stamp == 255 ? 1 : stamp + 1; }
        }
        dirtied_pages += todo;
    }
    return NULL;
}

/* ---- power off ---- */
static void clean_poweroff(const char *why) {
    logmsg("power off requested (%s)", why);
    stop_writer = 1;
    for (int i = 0; i < 300 && !writer_stopped; i++) usleep(10000); /* up to 3 s */
    if (disk_fd >= 0) { fdatasync(disk_fd); }
    sync();
    logmsg("synced, counter %llu flushed %llu; powering off",
           (unsigned long long)counter, (unsigned long long)flushed);
    if (!cfg_poweroff) { logmsg("--no-poweroff: exiting instead"); exit(0); }
    reboot(RB_POWER_OFF);
    logmsg("reboot(RB_POWER_OFF) failed: %s", strerror(errno));
    exit(1);
}

static int evdev_fds[MAX_EVDEV];
static int n_evdev;

static void open_evdevs(void) {
    DIR *d = opendir("/dev/input");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && n_evdev < MAX_EVDEV) {
        if (strncmp(e->d_name, "event", 5) != 0) continue;
        char p[300];
        snprintf(p, sizeof p, "/dev/input/%s", e->d_name);
        int fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        char devname[128] = "?";
        ioctl(fd, EVIOCGNAME(sizeof devname), devname);
        logmsg("watching %s (%s) for KEY_POWER", p, devname);
        evdev_fds[n_evdev++] = fd;
    }
    closedir(d);
    if (n_evdev == 0) logmsg("no /dev/input/event*: ACPI power button will not work");
}

/* ---- HTTP ---- */
struct client {
    int fd;
    size_t inlen;
    char in[REQ_MAX];
    char *out;
    size_t outlen, outoff;
    uint64_t since_ms;
};
static struct client clients[MAX_CLIENTS];

static int query_int(const char *q, const char *key, int *out) {
    size_t kl = strlen(key);
    for (const char *p = q; p && *p;) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            char *end;
            long v = strtol(p + kl + 1, &end, 10);
            if (end == p + kl + 1) return 0;
            *out = (int)v;
            return 1;
        }
        p = strchr(p, '&');
        if (p) p++;
    }
    return 0;
}

static int status_json(char *b, size_t n) {
    return snprintf(b, n,
        "{\"name\":\"%s\",\"boot_id\":\"%s\",\"counter\":%llu,\"flushed\":%llu,"
        "\"start_counter\":%llu,\"uptime_ms\":%llu,\"http_ready_ms\":%llu,"
        "\"writes\":%llu,\"write_errors\":%llu,\"last_write_errno\":%d,\"last_write_us\":%llu,"
        "\"write_ms\":%d,\"disk\":\"%s\",\"disk_ok\":%s,\"writer_stopped\":%s,"
        "\"dirty_mib_s\":%d,\"dirty_mem_mib\":%d,\"dirty_mem_actual_mib\":%d,\"dirtied_mib\":%llu,\"dirty_mismatches\":%llu,\"dirty_error\":\"%s\","
        "\"ip\":\"%s\",\"requests\":%llu}\n",
        cfg_name, boot_id, (unsigned long long)counter, (unsigned long long)flushed,
        (unsigned long long)start_counter, (unsigned long long)now_ms(CLOCK_BOOTTIME),
        (unsigned long long)http_ready_ms,
        (unsigned long long)writes_ok, (unsigned long long)write_errors, (int)last_write_errno,
        (unsigned long long)last_write_us, (int)write_ms, cfg_disk,
        disk_ok ? "true" : "false", writer_stopped ? "true" : "false",
        (int)dirty_rate, (int)dirty_mem, (int)dirty_mem_actual, (unsigned long long)(dirtied_pages / 256), (unsigned long long)dirty_mismatches, dirty_error,
        cfg_ip, (unsigned long long)http_requests);
}

static void respond(struct client *c, int code, const char *ctype, const char *body, int blen) {
    const char *reason = code == 200 ? "OK" : code == 400 ? "Bad Request" : code == 404 ? "Not Found" : "Error";
    c->out = malloc(RESP_MAX + 256);
    if (!c->out) return;
    int h = snprintf(c->out, 256,
        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
        "Cache-Control: no-store\r\nConnection: close\r\n\r\n", code, reason, ctype, blen);
    memcpy(c->out + h, body, blen);
    c->outlen = h + blen;
    c->outoff = 0;
}

static int pending_poweroff;

static void handle_request(struct client *c) {
    http_requests++;
    char body[RESP_MAX];
    char method[8] = "", target[512] = "";
    if (sscanf(c->in, "%7s %511s", method, target) != 2) {
        int n = snprintf(body, sizeof body, "{\"error\":\"bad request\"}\n");
        respond(c, 400, "application/json", body, n);
        return;
    }
    char *q = strchr(target, '?');
    if (q) *q++ = 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 && strcmp(method, "POST") != 0) {
        int n = snprintf(body, sizeof body, "{\"error\":\"method\"}\n");
        respond(c, 400, "application/json", body, n);
        return;
    }
    if (strcmp(target, "/") == 0 || strcmp(target, "/status") == 0) {
        respond(c, 200, "application/json", body, status_json(body, sizeof body));
    } else if (strcmp(target, "/health") == 0) {
        respond(c, 200, "text/plain", "ok\n", 3);
    } else if (strcmp(target, "/dirty") == 0) {
        int v;
        if (q && query_int(q, "rate", &v)) dirty_rate = v < 0 ? 0 : v;
        if (q && query_int(q, "mem", &v)) dirty_mem = v < 0 ? 0 : v;
        logmsg("dirty: rate %d MiB/s mem %d MiB", (int)dirty_rate, (int)dirty_mem);
        respond(c, 200, "application/json", body, status_json(body, sizeof body));
    } else if (strcmp(target, "/write") == 0) {
        int v;
        if (q && query_int(q, "interval_ms", &v)) write_ms = v < 0 ? 0 : v;
        respond(c, 200, "application/json", body, status_json(body, sizeof body));
    } else if (strcmp(target, "/poweroff") == 0) {
        pending_poweroff = 1;
        int n = snprintf(body, sizeof body, "{\"poweroff\":true}\n");
        respond(c, 200, "application/json", body, n);
    } else {
        int n = snprintf(body, sizeof body, "{\"error\":\"not found\"}\n");
        respond(c, 404, "application/json", body, n);
    }
    if (strcmp(method, "HEAD") == 0) { /* drop the body */
        char *end = strstr(c->out, "\r\n\r\n");
        if (end) c->outlen = end + 4 - c->out;
    }
}

static void close_client(struct client *c) {
    close(c->fd);
    free(c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static void read_cmdline(void) {
    FILE *f = fopen("/proc/cmdline", "r");
    if (!f) return;
    char line[4096];
    if (!fgets(line, sizeof line, f)) { fclose(f); return; }
    fclose(f);
    for (char *tok = strtok(line, " \t\n"); tok; tok = strtok(NULL, " \t\n")) {
        if (strncmp(tok, "vigil.", 6) != 0) continue;
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        const char *k = tok + 6, *v = eq + 1;
        if (!strcmp(k, "name")) snprintf(cfg_name, sizeof cfg_name, "%s", v);
        else if (!strcmp(k, "disk")) snprintf(cfg_disk, sizeof cfg_disk, "%s", v);
        else if (!strcmp(k, "ip")) snprintf(cfg_ip, sizeof cfg_ip, "%s", v);
        else if (!strcmp(k, "port")) cfg_port = atoi(v);
        else if (!strcmp(k, "dirty")) dirty_rate = atoi(v);
        else if (!strcmp(k, "dirtymem")) dirty_mem = atoi(v);
        else if (!strcmp(k, "write_ms")) write_ms = atoi(v);
    }
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    crc_init();
    read_cmdline();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-poweroff")) { cfg_poweroff = 0; continue; }
        if (!v) { fprintf(stderr, "missing value for %s\n", a); return 2; }
        if (!strcmp(a, "--disk")) snprintf(cfg_disk, sizeof cfg_disk, "%s", v);
        else if (!strcmp(a, "--port")) cfg_port = atoi(v);
        else if (!strcmp(a, "--name")) snprintf(cfg_name, sizeof cfg_name, "%s", v);
        else if (!strcmp(a, "--dirty")) dirty_rate = atoi(v);
        else if (!strcmp(a, "--dirtymem")) dirty_mem = atoi(v);
        else if (!strcmp(a, "--write-ms")) write_ms = atoi(v);
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
        i++;
    }
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (fgets(boot_id, sizeof boot_id, f)) boot_id[strcspn(boot_id, "\r\n")] = 0;
        fclose(f);
    }

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(cfg_port), .sin_addr.s_addr = htonl(INADDR_ANY) };
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 128) < 0) {
        logmsg("cannot listen on port %d: %s", cfg_port, strerror(errno));
        return 1;
    }

    pthread_t wt, dt;
    pthread_create(&wt, NULL, writer_main, NULL);
    pthread_create(&dt, NULL, dirtier_main, NULL);
    /* Give the writer up to 2 s to read the disk back, so the first answers
       already carry the recovered counter (disk_ok tells clients either way). */
    for (int i = 0; i < 200 && !disk_ok; i++) usleep(10000);
    open_evdevs();
    for (int i = 0; i < MAX_CLIENTS; i++) clients[i].fd = -1;
    http_ready_ms = now_ms(CLOCK_BOOTTIME);
    logmsg("name %s, http on port %d, disk %s, dirty %d MiB/s over %d MiB, write every %d ms, ready at %llu ms",
           cfg_name, cfg_port, cfg_disk, (int)dirty_rate, (int)dirty_mem, (int)write_ms,
           (unsigned long long)http_ready_ms);

    struct pollfd pfd[1 + MAX_EVDEV + MAX_CLIENTS];
    int map[1 + MAX_EVDEV + MAX_CLIENTS];
    for (;;) {
        int n = 0;
        pfd[n] = (struct pollfd){ .fd = ls, .events = POLLIN }; map[n++] = -1;
        for (int i = 0; i < n_evdev; i++) { pfd[n] = (struct pollfd){ .fd = evdev_fds[i], .events = POLLIN }; map[n++] = -2 - i; }
        uint64_t t = now_ms(CLOCK_MONOTONIC);
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &clients[i];
            if (c->fd < 0) continue;
            if (t - c->since_ms > 10000) { close_client(c); continue; } /* idle/slow client */
            pfd[n] = (struct pollfd){ .fd = c->fd, .events = c->out ? POLLOUT : POLLIN }; map[n++] = i;
        }
        int r = poll(pfd, n, 1000);
        if (r < 0) { if (errno == EINTR) continue; logmsg("poll: %s", strerror(errno)); sleep(1); continue; }
        for (int k = 0; k < n; k++) {
            if (!pfd[k].revents) continue;
            if (map[k] == -1) {
                for (;;) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    int slot = -1;
                    for (int i = 0; i < MAX_CLIENTS; i++) if (clients[i].fd < 0) { slot = i; break; }
                    if (slot < 0) { /* full: drop the oldest */
                        uint64_t oldest = UINT64_MAX;
                        for (int i = 0; i < MAX_CLIENTS; i++) if (clients[i].since_ms < oldest) { oldest = clients[i].since_ms; slot = i; }
                        close_client(&clients[slot]);
                    }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    clients[slot].fd = fd;
                    clients[slot].since_ms = t;
                }
            } else if (map[k] <= -2) {
                struct input_event ev[16];
                ssize_t got = read(pfd[k].fd, ev, sizeof ev);
                for (int i = 0; got > 0 && i < (int)(got / sizeof ev[0]); i++)
                    if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1)
                        clean_poweroff("ACPI power button");
            } else {
                struct client *c = &clients[map[k]];
                if (c->out) {
                    ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
                    if (w < 0 && errno == EAGAIN) continue;
                    if (w > 0) c->outoff += w;
                    if (w <= 0 || c->outoff == c->outlen) {
                        shutdown(c->fd, SHUT_WR);
                        close_client(c);
                    }
                    continue;
                }
                ssize_t got = read(c->fd, c->in + c->inlen, sizeof c->in - 1 - c->inlen);
                if (got < 0 && errno == EAGAIN) continue;
                if (got <= 0) { close_client(c); continue; }
                c->inlen += got;
                c->in[c->inlen] = 0;
                if (strstr(c->in, "\r\n\r\n") || strstr(c->in, "\n\n")) {
                    handle_request(c);
                    if (!c->out) { close_client(c); continue; }
                    /* try to answer at once; most responses fit the socket buffer */
                    ssize_t w = write(c->fd, c->out, c->outlen);
                    if (w > 0) c->outoff = w;
                    if (w < 0 && errno != EAGAIN) { close_client(c); continue; }
                    if (c->outoff == c->outlen) { shutdown(c->fd, SHUT_WR); close_client(c); }
                } else if (c->inlen >= sizeof c->in - 1) {
                    close_client(c);
                }
            }
        }
        if (pending_poweroff) clean_poweroff("HTTP /poweroff");
    }
}

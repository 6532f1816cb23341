/*
 * A fake AMD SMI library (libamd_smi.so) for tests without an AMD GPU.
 *
 * The real `amdsmi` Python package binds every symbol of its wrapper when it is imported;
 * this file implements, with behaviour scripted by a text file, the calls carbon_core's AMD
 * meter makes. Every other symbol the installed wrapper binds is a stub generated at build
 * time (tests/fake_amdsmi/__init__.py: stubs.c) that answers AMDSMI_STATUS_NOT_SUPPORTED.
 *
 * The scenario file is named by FAKE_AMDSMI_SCENARIO; it is read again whenever it changes
 * (inode, size or mtime) and on every amdsmi_init, which restarts every scripted sequence.
 * Without it, amdsmi_init fails with AMDSMI_STATUS_DRIVER_NOT_LOADED.
 *
 * Scenario format (one directive per line, '#' starts a comment):
 *
 *   init_error <code>          amdsmi_init returns this status
 *   driver <version>           amdsmi_get_gpu_driver_info
 *   gpu <hip-uuid> <name ...>  a new logical GPU; its amdsmi index is its rank in the file
 *   bdf <dddd:bb:dd.f>         PCI address (default 0000:<index+1>:00.0); logical GPUs that
 *                              share domain:bus:device are partitions of one socket, listed
 *                              one after the other
 *   partition <id>             amdsmi_get_gpu_kfd_info current_partition_id (default 0)
 *   hip_id <n>|none            amdsmi_get_gpu_enumeration_info hip_id (default: the index)
 *   serial <hex>               amdsmi_get_gpu_asic_info asic_serial
 *   energy <v> <v> ...         amdsmi_get_energy_count accumulator: successive calls return
 *                              successive values, the last one repeats; "!<code>" fails
 *   resolution <float>         counter resolution in uJ (default 15.3)
 *   power <v> <v> ...          current_socket_power in W, same rules (65535: N/A)
 *   average <v> <v> ...        average_socket_power in W, same rules
 *   watts <W>                  where energy/power are not scripted: the accumulator is
 *                              W * CLOCK_MONOTONIC seconds / resolution, the power W
 *   procs <pid> <pid> ...      amdsmi_get_gpu_process_list
 *
 * A GPU with neither energy nor watts answers NOT_SUPPORTED for the counter; one with no
 * power, average or watts reports every power field as N/A (0xFFFF).
 *
 * Test control (through ctypes): fake_amdsmi_call_count("amdsmi_shut_down"),
 * fake_amdsmi_reset_counts(), fake_amdsmi_init_refcount(), fake_amdsmi_sizeof("power_info").
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

enum {
    AMDSMI_STATUS_SUCCESS = 0,
    AMDSMI_STATUS_INVAL = 1,
    AMDSMI_STATUS_NOT_SUPPORTED = 2,
    AMDSMI_STATUS_NOT_FOUND = 31,
    AMDSMI_STATUS_NOT_INIT = 32,
    AMDSMI_STATUS_DRIVER_NOT_LOADED = 34,
    AMDSMI_STATUS_INSUFFICIENT_SIZE = 41,
};

#define MAX_GPUS 64
#define MAX_SEQ 256
#define MAX_PROCS 64
#define NA16 0xFFFFu

/* The structures the wrapper passes, field for field as amdsmi_wrapper.py declares them. */
typedef struct __attribute__((packed)) {
    char market_name[256];
    uint32_t vendor_id;
    char vendor_name[256];
    uint32_t subvendor_id;
    uint64_t device_id;
    uint32_t rev_id;
    char asic_serial[256];
    uint32_t oam_id;
    uint32_t num_of_compute_units;
    uint8_t padding0[4];
    uint64_t target_graphics_version;
    uint32_t subsystem_id;
    uint32_t reserved[21];
} asic_info_t;

typedef struct __attribute__((packed)) {
    uint32_t drm_render;
    uint32_t drm_card;
    uint32_t hsa_id;
    uint32_t hip_id;
    char hip_uuid[256];
} enumeration_info_t;

typedef struct __attribute__((packed)) {
    uint64_t kfd_id;
    uint32_t node_id;
    uint32_t current_partition_id;
    uint32_t reserved[12];
} kfd_info_t;

typedef struct __attribute__((packed)) {
    uint64_t socket_power;
    uint32_t current_socket_power;
    uint32_t average_socket_power;
    uint64_t gfx_voltage;
    uint64_t soc_voltage;
    uint64_t mem_voltage;
    uint32_t power_limit;
    uint8_t padding0[4];
    uint64_t reserved[18];
} power_info_t;

typedef struct __attribute__((packed)) {
    char name[256];
    uint32_t pid;
    uint8_t padding0[4];
    uint64_t mem;
    struct __attribute__((packed)) {
        uint64_t gfx;
        uint64_t enc;
        uint32_t reserved[12];
    } engine_usage;
    struct __attribute__((packed)) {
        uint64_t gtt_mem;
        uint64_t cpu_mem;
        uint64_t vram_mem;
        uint32_t reserved[10];
    } memory_usage;
    char container_name[256];
    uint32_t cu_occupancy;
    uint32_t reserved[11];
} proc_info_t;

typedef struct __attribute__((packed)) {
    char driver_version[256];
    char driver_date[256];
    char driver_name[256];
} driver_info_t;

EXPORT int fake_amdsmi_sizeof(const char *name) {
    if (strcmp(name, "asic_info") == 0) return (int)sizeof(asic_info_t);
    if (strcmp(name, "enumeration_info") == 0) return (int)sizeof(enumeration_info_t);
    if (strcmp(name, "kfd_info") == 0) return (int)sizeof(kfd_info_t);
    if (strcmp(name, "power_info") == 0) return (int)sizeof(power_info_t);
    if (strcmp(name, "proc_info") == 0) return (int)sizeof(proc_info_t);
    if (strcmp(name, "driver_info") == 0) return (int)sizeof(driver_info_t);
    return -1;
}

typedef struct {
    unsigned long long value;
    int err;
} step_t;

typedef struct {
    step_t steps[MAX_SEQ];
    int n;   /* 0: not scripted */
    int pos; /* next step */
} seq_t;

typedef struct {
    int socket; /* index into sockets */
    char uuid[96];
    char name[200];
    char serial[100];
    unsigned long long domain, bus, device, function;
    unsigned int partition;
    long hip_id; /* < 0: N/A */
    seq_t energy, power, average;
    double resolution;
    double watts; /* < 0: not set */
    unsigned int procs[MAX_PROCS];
    int nprocs;
} fake_gpu;

typedef struct {
    int first, count; /* its GPUs: gpus[first .. first + count) */
} fake_socket;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static fake_gpu gpus[MAX_GPUS];
static fake_socket sockets[MAX_GPUS];
static int ngpus, nsockets;
static int init_error = AMDSMI_STATUS_DRIVER_NOT_LOADED;
static char driver[80];
static int refcount;
static struct stat loaded_stat;
static int loaded;

/* ---- call counting (test control) ------------------------------------------------ */

#define MAX_COUNTERS 512
static struct {
    char name[72];
    int count;
} counters[MAX_COUNTERS];

static void count_call(const char *name) {
    for (int i = 0; i < MAX_COUNTERS; i++) {
        if (counters[i].name[0] == '\0') snprintf(counters[i].name, sizeof counters[i].name, "%s", name);
        if (strcmp(counters[i].name, name) == 0) {
            counters[i].count++;
            return;
        }
    }
}

EXPORT int fake_amdsmi_call_count(const char *name) {
    pthread_mutex_lock(&lock);
    int n = 0;
    for (int i = 0; i < MAX_COUNTERS && counters[i].name[0]; i++) {
        if (strcmp(counters[i].name, name) == 0) n = counters[i].count;
    }
    pthread_mutex_unlock(&lock);
    return n;
}

EXPORT void fake_amdsmi_reset_counts(void) {
    pthread_mutex_lock(&lock);
    memset(counters, 0, sizeof counters);
    pthread_mutex_unlock(&lock);
}

EXPORT int fake_amdsmi_init_refcount(void) { return refcount; }

/* Every generated stub lands here: counted, and NOT_SUPPORTED. */
EXPORT int fake_amdsmi_stub_called(const char *name) {
    pthread_mutex_lock(&lock);
    count_call(name);
    pthread_mutex_unlock(&lock);
    return AMDSMI_STATUS_NOT_SUPPORTED;
}

/* ---- scenario parsing ---------------------------------------------------------- */

static void parse_seq(seq_t *seq, char *rest) {
    seq->n = 0;
    seq->pos = 0;
    for (char *tok = strtok(rest, " \t\r\n"); tok && seq->n < MAX_SEQ; tok = strtok(NULL, " \t\r\n")) {
        step_t *s = &seq->steps[seq->n++];
        s->err = tok[0] == '!' ? atoi(tok + 1) : 0;
        s->value = tok[0] == '!' ? 0 : strtoull(tok, NULL, 10);
    }
}

static void reset_scenario(void) {
    memset(gpus, 0, sizeof gpus);
    memset(sockets, 0, sizeof sockets);
    ngpus = nsockets = 0;
    init_error = AMDSMI_STATUS_DRIVER_NOT_LOADED;
    snprintf(driver, sizeof driver, "%s", "6.10.5-fake");
}

/* Sockets: logical GPUs that share domain:bus:device, in the order they first appear. */
static void group_sockets(void) {
    nsockets = 0;
    for (int i = 0; i < ngpus; i++) {
        fake_gpu *g = &gpus[i];
        fake_gpu *prev = i > 0 ? &gpus[i - 1] : NULL;
        if (prev && prev->domain == g->domain && prev->bus == g->bus && prev->device == g->device) {
            g->socket = prev->socket;
            sockets[g->socket].count++;
        } else {
            g->socket = nsockets;
            sockets[nsockets].first = i;
            sockets[nsockets].count = 1;
            nsockets++;
        }
    }
}

static void parse_scenario(FILE *f) {
    reset_scenario();
    init_error = AMDSMI_STATUS_SUCCESS;
    char line[8192];
    fake_gpu *cur = NULL;
    while (fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char key[32] = "";
        int off = 0;
        if (sscanf(line, " %31s %n", key, &off) < 1) continue;
        char *rest = line + off;
        rest[strcspn(rest, "\r\n")] = '\0';
        if (strcmp(key, "init_error") == 0) {
            init_error = atoi(rest);
        } else if (strcmp(key, "driver") == 0) {
            snprintf(driver, sizeof driver, "%s", rest);
        } else if (strcmp(key, "gpu") == 0 && ngpus < MAX_GPUS) {
            cur = &gpus[ngpus];
            cur->bus = (unsigned long long)ngpus + 1;
            cur->hip_id = ngpus++;
            cur->watts = -1.0;
            cur->resolution = 15.3;
            int n = 0;
            sscanf(rest, "%95s %n", cur->uuid, &n);
            snprintf(cur->name, sizeof cur->name, "%s", rest + n);
            char uuid[96];
            memcpy(uuid, cur->uuid, sizeof uuid);
            snprintf(cur->serial, sizeof cur->serial, "0x%s", uuid + (strncmp(uuid, "GPU-", 4) ? 0 : 4));
        } else if (cur && strcmp(key, "bdf") == 0) {
            sscanf(rest, "%llx:%llx:%llx.%llx", &cur->domain, &cur->bus, &cur->device, &cur->function);
        } else if (cur && strcmp(key, "partition") == 0) {
            cur->partition = (unsigned int)strtoul(rest, NULL, 10);
        } else if (cur && strcmp(key, "hip_id") == 0) {
            cur->hip_id = strncmp(rest, "none", 4) == 0 ? -1 : atol(rest);
        } else if (cur && strcmp(key, "serial") == 0) {
            snprintf(cur->serial, sizeof cur->serial, "%s", rest);
        } else if (cur && strcmp(key, "energy") == 0) {
            parse_seq(&cur->energy, rest);
        } else if (cur && strcmp(key, "resolution") == 0) {
            cur->resolution = atof(rest);
        } else if (cur && strcmp(key, "power") == 0) {
            parse_seq(&cur->power, rest);
        } else if (cur && strcmp(key, "average") == 0) {
            parse_seq(&cur->average, rest);
        } else if (cur && strcmp(key, "watts") == 0) {
            cur->watts = atof(rest);
        } else if (cur && strcmp(key, "procs") == 0) {
            cur->nprocs = 0;
            for (char *tok = strtok(rest, " \t"); tok && cur->nprocs < MAX_PROCS; tok = strtok(NULL, " \t")) {
                cur->procs[cur->nprocs++] = (unsigned int)strtoul(tok, NULL, 10);
            }
        }
    }
    group_sockets();
}

/* Read the scenario again when forced or when the file changed. Caller holds `lock`. */
static void sync_scenario(int force) {
    const char *path = getenv("FAKE_AMDSMI_SCENARIO");
    struct stat st;
    if (!path || !*path || stat(path, &st) != 0) {
        if (loaded || force) reset_scenario();
        loaded = 0;
        return;
    }
    if (!force && loaded && st.st_ino == loaded_stat.st_ino && st.st_size == loaded_stat.st_size &&
        st.st_mtim.tv_sec == loaded_stat.st_mtim.tv_sec && st.st_mtim.tv_nsec == loaded_stat.st_mtim.tv_nsec) {
        return;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        reset_scenario();
        loaded = 0;
        return;
    }
    parse_scenario(f);
    fclose(f);
    loaded_stat = st;
    loaded = 1;
}

static int next_step(seq_t *seq, unsigned long long *out) {
    step_t *s = &seq->steps[seq->pos < seq->n ? seq->pos : seq->n - 1];
    if (seq->pos < seq->n) seq->pos++;
    if (s->err) return s->err;
    *out = s->value;
    return AMDSMI_STATUS_SUCCESS;
}

static double monotonic_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Common prologue of the calls: count, resync, check init. */
#define ENTER(fname)              \
    pthread_mutex_lock(&lock);    \
    count_call(fname);            \
    sync_scenario(0);             \
    int rc_ = AMDSMI_STATUS_SUCCESS; \
    if (refcount <= 0) rc_ = AMDSMI_STATUS_NOT_INIT;
#define LEAVE(rc)                    \
    do {                             \
        int r_ = (rc);               \
        pthread_mutex_unlock(&lock); \
        return r_;                   \
    } while (0)
/* A processor-handle call: initialised, a handle of ours, an output pointer. */
#define ENTER_GPU(fname, handle, out)                                        \
    ENTER(fname);                                                            \
    if (rc_ != AMDSMI_STATUS_SUCCESS) LEAVE(rc_);                            \
    fake_gpu *g = (fake_gpu *)(handle);                                      \
    if (!(g >= gpus && g < gpus + ngpus) || !(out)) LEAVE(AMDSMI_STATUS_INVAL);

/* ---- AMD SMI entry points --------------------------------------------------------- */

EXPORT int amdsmi_init(uint64_t flags) {
    (void)flags;
    pthread_mutex_lock(&lock);
    count_call("amdsmi_init");
    sync_scenario(1);
    int rc = init_error;
    if (rc == AMDSMI_STATUS_SUCCESS) refcount++;
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int amdsmi_shut_down(void) {
    pthread_mutex_lock(&lock);
    count_call("amdsmi_shut_down");
    int rc = refcount > 0 ? AMDSMI_STATUS_SUCCESS : AMDSMI_STATUS_NOT_INIT;
    if (refcount > 0) refcount--;
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int amdsmi_get_socket_handles(uint32_t *count, void **handles) {
    ENTER("amdsmi_get_socket_handles");
    if (rc_ != AMDSMI_STATUS_SUCCESS) LEAVE(rc_);
    if (!count) LEAVE(AMDSMI_STATUS_INVAL);
    if (handles) {
        uint32_t n = *count < (uint32_t)nsockets ? *count : (uint32_t)nsockets;
        for (uint32_t i = 0; i < n; i++) handles[i] = &sockets[i];
        *count = n;
    } else {
        *count = (uint32_t)nsockets;
    }
    LEAVE(AMDSMI_STATUS_SUCCESS);
}

EXPORT int amdsmi_get_processor_handles(void *socket, uint32_t *count, void **handles) {
    ENTER("amdsmi_get_processor_handles");
    if (rc_ != AMDSMI_STATUS_SUCCESS) LEAVE(rc_);
    fake_socket *s = (fake_socket *)socket;
    if (!count || !(s >= sockets && s < sockets + nsockets)) LEAVE(AMDSMI_STATUS_INVAL);
    if (handles) {
        uint32_t n = *count < (uint32_t)s->count ? *count : (uint32_t)s->count;
        for (uint32_t i = 0; i < n; i++) handles[i] = &gpus[s->first + (int)i];
        *count = n;
    } else {
        *count = (uint32_t)s->count;
    }
    LEAVE(AMDSMI_STATUS_SUCCESS);
}

EXPORT int amdsmi_get_gpu_asic_info(void *handle, asic_info_t *info) {
    ENTER_GPU("amdsmi_get_gpu_asic_info", handle, info);
    memset(info, 0, sizeof *info);
    snprintf(info->market_name, sizeof info->market_name, "%s", g->name);
    info->vendor_id = 0x1002;
    snprintf(info->vendor_name, sizeof info->vendor_name, "%s", "Advanced Micro Devices Inc. [AMD/ATI]");
    info->device_id = 0x74a1;
    snprintf(info->asic_serial, sizeof info->asic_serial, "%s", g->serial);
    info->oam_id = 0xFFFFFFFFu;
    info->num_of_compute_units = 304;
    info->target_graphics_version = 0x942;
    LEAVE(AMDSMI_STATUS_SUCCESS);
}

EXPORT int amdsmi_get_gpu_enumeration_info(void *handle, enumeration_info_t *info) {
    ENTER_GPU("amdsmi_get_gpu_enumeration_info", handle, info);
    memset(info, 0, sizeof *info);
    int index = (int)(g - gpus);
    info->drm_render = 128u + (unsigned)index;
    info->drm_card = (unsigned)index;
    info->hsa_id = (unsigned)index + 1u;
    info->hip_id = g->hip_id < 0 ? 0xFFFFFFFFu : (uint32_t)g->hip_id;
    snprintf(info->hip_uuid, sizeof info->hip_uuid, "%s", g->uuid);
    LEAVE(AMDSMI_STATUS_SUCCESS);
}

EXPORT int amdsmi_get_gpu_kfd_info(void *handle, kfd_info_t *info) {
    ENTER_GPU("amdsmi_get_gpu_kfd_info", handle, info);
    memset(info, 0, sizeof *info);
    info->kfd_id = 1000u + (uint64_t)(g - gpus);
    info->node_id = (uint32_t)(g - gpus) + 1u;
    info->current_partition_id = g->partition;
    LEAVE(AMDSMI_STATUS_SUCCESS);
}

EXPORT int amdsmi_get_gpu_device_bdf(void *handle, uint64_t *bdf) {
    ENTER_GPU("amdsmi_get_gpu_device_bdf", handle, bdf);
    *bdf = (g->domain << 16) | ((g->bus & 0xFF) << 8) | ((g->device & 0x1F) << 3) | (g->function & 0x7);
    LEAVE(AMDSMI_STATUS_SUCCESS);
}

EXPORT int amdsmi_get_gpu_device_uuid(void *handle, uint32_t *length, char *uuid) {
    ENTER_GPU("amdsmi_get_gpu_device_uuid", handle, length);
    if (!uuid || *length <= strlen(g->uuid)) LEAVE(AMDSMI_STATUS_INSUFFICIENT_SIZE);
    snprintf(uuid, *length, "%s", g->uuid);
    LEAVE(AMDSMI_STATUS_SUCCESS);
}

EXPORT int amdsmi_get_energy_count(void *handle, uint64_t *energy, float *resolution, uint64_t *timestamp) {
    ENTER_GPU("amdsmi_get_energy_count", handle, energy);
    if (!resolution || !timestamp) LEAVE(AMDSMI_STATUS_INVAL);
    double now = monotonic_s();
    *resolution = (float)g->resolution;
    *timestamp = (uint64_t)(now * 1e9);
    if (g->energy.n) {
        unsigned long long v = 0;
        int rc = next_step(&g->energy, &v);
        if (rc == AMDSMI_STATUS_SUCCESS) *energy = v;
        LEAVE(rc);
    }
    if (g->watts >= 0) {
        *energy = (uint64_t)(g->watts * now * 1e6 / (double)(float)g->resolution);
        LEAVE(AMDSMI_STATUS_SUCCESS);
    }
    LEAVE(AMDSMI_STATUS_NOT_SUPPORTED);
}

static int power_field(seq_t *seq, double watts, uint32_t *out) {
    unsigned long long v = NA16;
    if (seq->n) {
        int rc = next_step(seq, &v);
        if (rc != AMDSMI_STATUS_SUCCESS) return rc;
    } else if (watts >= 0) {
        v = (unsigned long long)(watts + 0.5);
    }
    *out = (uint32_t)v;
    return AMDSMI_STATUS_SUCCESS;
}
/* The power fields are in a packed struct: fill locals, then copy. */

EXPORT int amdsmi_get_power_info(void *handle, power_info_t *info) {
    ENTER_GPU("amdsmi_get_power_info", handle, info);
    memset(info, 0, sizeof *info);
    uint32_t current = NA16, average = NA16;
    int rc = power_field(&g->power, g->watts, &current);
    if (rc == AMDSMI_STATUS_SUCCESS) rc = power_field(&g->average, -1.0, &average);
    info->current_socket_power = current;
    info->average_socket_power = average;
    info->socket_power = NA16;
    info->gfx_voltage = info->soc_voltage = info->mem_voltage = NA16;
    info->power_limit = 750;
    LEAVE(rc);
}

EXPORT int amdsmi_get_gpu_process_list(void *handle, uint32_t *max_processes, proc_info_t *list) {
    ENTER_GPU("amdsmi_get_gpu_process_list", handle, max_processes);
    uint32_t n = (uint32_t)g->nprocs;
    if (!list || *max_processes < n) {
        *max_processes = n;
        LEAVE(n == 0 ? AMDSMI_STATUS_SUCCESS : AMDSMI_STATUS_INSUFFICIENT_SIZE);
    }
    for (uint32_t i = 0; i < n; i++) {
        memset(&list[i], 0, sizeof list[i]);
        snprintf(list[i].name, sizeof list[i].name, "%s", "python");
        list[i].pid = g->procs[i];
        list[i].mem = 1ull << 30;
    }
    *max_processes = n;
    LEAVE(AMDSMI_STATUS_SUCCESS);
}

EXPORT int amdsmi_get_gpu_driver_info(void *handle, driver_info_t *info) {
    ENTER_GPU("amdsmi_get_gpu_driver_info", handle, info);
    memset(info, 0, sizeof *info);
    snprintf(info->driver_version, sizeof info->driver_version, "%s", driver);
    snprintf(info->driver_name, sizeof info->driver_name, "%s", "amdgpu");
    LEAVE(AMDSMI_STATUS_SUCCESS);
}

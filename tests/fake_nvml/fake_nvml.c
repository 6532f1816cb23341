/*
 * A fake NVIDIA Management Library (libnvidia-ml.so.1) for tests without a GPU.
 *
 * It implements the NVML entry points that the real `pynvml` binding calls for the
 * functions carbon_core's NVML meter uses, with behaviour scripted by a text file named
 * by the environment variable FAKE_NVML_SCENARIO. The file is read again whenever it
 * changes (inode, size or mtime), and on every nvmlInit; a (re)read restarts every
 * scripted sequence. Without FAKE_NVML_SCENARIO, nvmlInit fails with
 * NVML_ERROR_DRIVER_NOT_LOADED, like a machine without the NVIDIA driver.
 *
 * Scenario format (one directive per line, '#' starts a comment):
 *
 *   init_error <code>              nvmlInit returns this NVML error code
 *   driver <version>               nvmlSystemGetDriverVersion
 *   gpu <uuid> <name ...>          a new device; its NVML index is its rank in the file
 *   energy <v> <v> ...             nvmlDeviceGetTotalEnergyConsumption (mJ): successive
 *                                  calls return successive values, the last one repeats;
 *                                  a token "!<code>" makes that call fail with <code>
 *   power <v> <v> ...              nvmlDeviceGetPowerUsage (mW), same rules
 *   watts <W>                      where energy/power are not scripted: the counter is
 *                                  W * CLOCK_MONOTONIC seconds * 1000 (the same in every
 *                                  process) and the power reading is W * 1000 mW
 *   procs <pid> <pid> ...          nvmlDeviceGetComputeRunningProcesses
 *   mig <MIG-uuid> <parent index>  a MIG device handle reachable by its UUID
 *
 * A device with neither energy nor watts answers NVML_ERROR_NOT_SUPPORTED for the
 * counter; likewise for power.
 *
 * Test control (through ctypes): fake_nvml_call_count("nvmlShutdown"),
 * fake_nvml_reset_counts(), fake_nvml_init_refcount().
 *
 * Build: gcc -shared -fPIC -Wl,-soname,libnvidia-ml.so.1 -o libnvidia-ml.so.1 fake_nvml.c
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
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_UNKNOWN = 999,
};

#define MAX_DEVICES 32
#define MAX_SEQ 256
#define MAX_PROCS 64
#define MAX_MIGS 32

/* One scripted value: an error code (err != 0) or a value. */
typedef struct {
    unsigned long long value;
    int err;
} step_t;

typedef struct {
    step_t steps[MAX_SEQ];
    int n;   /* 0: not scripted */
    int pos; /* next step */
} seq_t;

/* Devices and MIG devices share one handle type; `is_mig` tells them apart. */
typedef struct fake_dev {
    int is_mig;
    int index;  /* NVML index, or parent index for a MIG device */
    char uuid[96];
    char name[96];
    seq_t energy;
    seq_t power;
    double watts; /* < 0: not set */
    unsigned int procs[MAX_PROCS];
    int nprocs;
} fake_dev;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t; /* pynvml's c_nvmlProcessInfo_v3_t */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static fake_dev devices[MAX_DEVICES];
static fake_dev migs[MAX_MIGS];
static int ndevices, nmigs;
static int init_error = NVML_ERROR_DRIVER_NOT_LOADED;
static char driver[80];
static int refcount;
static struct stat loaded_stat;
static int loaded;

/* ---- call counting (test control) ------------------------------------------------ */

#define MAX_COUNTERS 64
static struct {
    char name[64];
    int count;
} counters[MAX_COUNTERS];

static void count_call(const char *name) {
    for (int i = 0; i < MAX_COUNTERS; i++) {
        if (counters[i].name[0] == '\0') {
            snprintf(counters[i].name, sizeof counters[i].name, "%s", name);
        }
        if (strcmp(counters[i].name, name) == 0) {
            counters[i].count++;
            return;
        }
    }
}

EXPORT int fake_nvml_call_count(const char *name) {
    pthread_mutex_lock(&lock);
    int n = 0;
    for (int i = 0; i < MAX_COUNTERS && counters[i].name[0]; i++) {
        if (strcmp(counters[i].name, name) == 0) n = counters[i].count;
    }
    pthread_mutex_unlock(&lock);
    return n;
}

EXPORT void fake_nvml_reset_counts(void) {
    pthread_mutex_lock(&lock);
    memset(counters, 0, sizeof counters);
    pthread_mutex_unlock(&lock);
}

EXPORT int fake_nvml_init_refcount(void) { return refcount; }

/* ---- scenario parsing ---------------------------------------------------------- */

static void parse_seq(seq_t *seq, char *rest) {
    seq->n = 0;
    seq->pos = 0;
    for (char *tok = strtok(rest, " \t\r\n"); tok && seq->n < MAX_SEQ;
         tok = strtok(NULL, " \t\r\n")) {
        step_t *s = &seq->steps[seq->n++];
        if (tok[0] == '!') {
            s->err = atoi(tok + 1);
            s->value = 0;
        } else {
            s->err = 0;
            s->value = strtoull(tok, NULL, 10);
        }
    }
}

static void reset_scenario(void) {
    memset(devices, 0, sizeof devices);
    memset(migs, 0, sizeof migs);
    ndevices = nmigs = 0;
    init_error = NVML_ERROR_DRIVER_NOT_LOADED;
    snprintf(driver, sizeof driver, "%s", "999.99.99-fake");
}

static void parse_scenario(FILE *f) {
    reset_scenario();
    init_error = NVML_SUCCESS;
    char line[8192];
    fake_dev *cur = NULL;
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
        } else if (strcmp(key, "gpu") == 0 && ndevices < MAX_DEVICES) {
            cur = &devices[ndevices];
            cur->index = ndevices++;
            cur->watts = -1.0;
            int n = 0;
            sscanf(rest, "%95s %n", cur->uuid, &n);
            snprintf(cur->name, sizeof cur->name, "%s", rest + n);
        } else if (strcmp(key, "mig") == 0 && nmigs < MAX_MIGS) {
            fake_dev *m = &migs[nmigs++];
            m->is_mig = 1;
            m->watts = -1.0;
            sscanf(rest, "%95s %d", m->uuid, &m->index);
            snprintf(m->name, sizeof m->name, "%s", "MIG device");
        } else if (cur && strcmp(key, "energy") == 0) {
            parse_seq(&cur->energy, rest);
        } else if (cur && strcmp(key, "power") == 0) {
            parse_seq(&cur->power, rest);
        } else if (cur && strcmp(key, "watts") == 0) {
            cur->watts = atof(rest);
        } else if (cur && strcmp(key, "procs") == 0) {
            cur->nprocs = 0;
            for (char *tok = strtok(rest, " \t"); tok && cur->nprocs < MAX_PROCS;
                 tok = strtok(NULL, " \t")) {
                cur->procs[cur->nprocs++] = (unsigned int)strtoul(tok, NULL, 10);
            }
        }
    }
}

/* Read the scenario again when forced or when the file changed. Caller holds `lock`. */
static void sync_scenario(int force) {
    const char *path = getenv("FAKE_NVML_SCENARIO");
    struct stat st;
    if (!path || !*path || stat(path, &st) != 0) {
        if (loaded || force) reset_scenario();
        loaded = 0;
        return;
    }
    if (!force && loaded && st.st_ino == loaded_stat.st_ino && st.st_size == loaded_stat.st_size &&
        st.st_mtim.tv_sec == loaded_stat.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == loaded_stat.st_mtim.tv_nsec) {
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
    return NVML_SUCCESS;
}

static double monotonic_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Common prologue of device calls: count, resync, check init and handle. */
#define ENTER(fname)                                \
    pthread_mutex_lock(&lock);                      \
    count_call(fname);                              \
    sync_scenario(0);                               \
    int rc_ = NVML_SUCCESS;                         \
    if (refcount <= 0) rc_ = NVML_ERROR_UNINITIALIZED;
#define LEAVE(rc)                 \
    do {                          \
        int r_ = (rc);            \
        pthread_mutex_unlock(&lock); \
        return r_;                \
    } while (0)

static int valid_device(const fake_dev *d) {
    return d >= devices && d < devices + ndevices;
}

static int valid_mig(const fake_dev *d) { return d >= migs && d < migs + nmigs; }

/* ---- NVML entry points ------------------------------------------------------------ */

static int do_init(const char *fname) {
    pthread_mutex_lock(&lock);
    count_call(fname);
    sync_scenario(1);
    int rc = init_error;
    if (rc == NVML_SUCCESS) refcount++;
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT int nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    return do_init("nvmlInitWithFlags");
}
EXPORT int nvmlInit_v2(void) { return do_init("nvmlInit_v2"); }
EXPORT int nvmlInit(void) { return do_init("nvmlInit"); }

EXPORT int nvmlShutdown(void) {
    pthread_mutex_lock(&lock);
    count_call("nvmlShutdown");
    int rc = refcount > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
    if (refcount > 0) refcount--;
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT const char *nvmlErrorString(int result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

EXPORT int nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    ENTER("nvmlSystemGetDriverVersion");
    if (rc_ == NVML_SUCCESS) {
        if (!version || length <= strlen(driver)) LEAVE(NVML_ERROR_INSUFFICIENT_SIZE);
        snprintf(version, length, "%s", driver);
    }
    LEAVE(rc_);
}

static int get_count(unsigned int *count, const char *fname) {
    ENTER(fname);
    if (rc_ == NVML_SUCCESS) {
        if (!count) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
        *count = (unsigned int)ndevices;
    }
    LEAVE(rc_);
}
EXPORT int nvmlDeviceGetCount_v2(unsigned int *c) { return get_count(c, "nvmlDeviceGetCount_v2"); }
EXPORT int nvmlDeviceGetCount(unsigned int *c) { return get_count(c, "nvmlDeviceGetCount"); }

static int by_index(unsigned int index, fake_dev **device, const char *fname) {
    ENTER(fname);
    if (rc_ == NVML_SUCCESS) {
        if (!device) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
        if (index >= (unsigned int)ndevices) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
        *device = &devices[index];
    }
    LEAVE(rc_);
}
EXPORT int nvmlDeviceGetHandleByIndex_v2(unsigned int i, fake_dev **d) {
    return by_index(i, d, "nvmlDeviceGetHandleByIndex_v2");
}
EXPORT int nvmlDeviceGetHandleByIndex(unsigned int i, fake_dev **d) {
    return by_index(i, d, "nvmlDeviceGetHandleByIndex");
}

EXPORT int nvmlDeviceGetHandleByUUID(const char *uuid, fake_dev **device) {
    ENTER("nvmlDeviceGetHandleByUUID");
    if (rc_ != NVML_SUCCESS) LEAVE(rc_);
    if (!uuid || !device) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    for (int i = 0; i < ndevices; i++) {
        if (strcmp(devices[i].uuid, uuid) == 0) {
            *device = &devices[i];
            LEAVE(NVML_SUCCESS);
        }
    }
    for (int i = 0; i < nmigs; i++) {
        if (strcmp(migs[i].uuid, uuid) == 0) {
            *device = &migs[i];
            LEAVE(NVML_SUCCESS);
        }
    }
    LEAVE(NVML_ERROR_NOT_FOUND);
}

static int copy_str(const char *src, char *dst, unsigned int length) {
    if (!dst || length <= strlen(src)) return NVML_ERROR_INSUFFICIENT_SIZE;
    snprintf(dst, length, "%s", src);
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetUUID(fake_dev *device, char *uuid, unsigned int length) {
    ENTER("nvmlDeviceGetUUID");
    if (rc_ != NVML_SUCCESS) LEAVE(rc_);
    if (!valid_device(device) && !valid_mig(device)) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    LEAVE(copy_str(device->uuid, uuid, length));
}

EXPORT int nvmlDeviceGetName(fake_dev *device, char *name, unsigned int length) {
    ENTER("nvmlDeviceGetName");
    if (rc_ != NVML_SUCCESS) LEAVE(rc_);
    if (!valid_device(device) && !valid_mig(device)) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    LEAVE(copy_str(device->name, name, length));
}

EXPORT int nvmlDeviceGetIndex(fake_dev *device, unsigned int *index) {
    ENTER("nvmlDeviceGetIndex");
    if (rc_ != NVML_SUCCESS) LEAVE(rc_);
    if (!valid_device(device) || !index) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    *index = (unsigned int)device->index;
    LEAVE(NVML_SUCCESS);
}

EXPORT int nvmlDeviceGetTotalEnergyConsumption(fake_dev *device, unsigned long long *energy) {
    ENTER("nvmlDeviceGetTotalEnergyConsumption");
    if (rc_ != NVML_SUCCESS) LEAVE(rc_);
    if (valid_mig(device)) LEAVE(NVML_ERROR_NOT_SUPPORTED);
    if (!valid_device(device) || !energy) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    if (device->energy.n) LEAVE(next_step(&device->energy, energy));
    if (device->watts >= 0) {
        *energy = (unsigned long long)(device->watts * monotonic_s() * 1000.0);
        LEAVE(NVML_SUCCESS);
    }
    LEAVE(NVML_ERROR_NOT_SUPPORTED);
}

EXPORT int nvmlDeviceGetPowerUsage(fake_dev *device, unsigned int *power) {
    ENTER("nvmlDeviceGetPowerUsage");
    if (rc_ != NVML_SUCCESS) LEAVE(rc_);
    if (valid_mig(device)) LEAVE(NVML_ERROR_NOT_SUPPORTED);
    if (!valid_device(device) || !power) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    if (device->power.n) {
        unsigned long long v = 0;
        int rc = next_step(&device->power, &v);
        if (rc == NVML_SUCCESS) *power = (unsigned int)v;
        LEAVE(rc);
    }
    if (device->watts >= 0) {
        *power = (unsigned int)(device->watts * 1000.0);
        LEAVE(NVML_SUCCESS);
    }
    LEAVE(NVML_ERROR_NOT_SUPPORTED);
}

static int running_processes(fake_dev *device, unsigned int *count, nvmlProcessInfo_t *infos,
                             const char *fname) {
    ENTER(fname);
    if (rc_ != NVML_SUCCESS) LEAVE(rc_);
    if (!valid_device(device) || !count) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    unsigned int n = (unsigned int)device->nprocs;
    if (!infos || *count < n) {
        *count = n;
        LEAVE(n == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE);
    }
    for (unsigned int i = 0; i < n; i++) {
        infos[i].pid = device->procs[i];
        infos[i].usedGpuMemory = 1ULL << 30;
        infos[i].gpuInstanceId = 0xFFFFFFFFu;
        infos[i].computeInstanceId = 0xFFFFFFFFu;
    }
    *count = n;
    LEAVE(NVML_SUCCESS);
}
EXPORT int nvmlDeviceGetComputeRunningProcesses_v3(fake_dev *d, unsigned int *c,
                                                   nvmlProcessInfo_t *p) {
    return running_processes(d, c, p, "nvmlDeviceGetComputeRunningProcesses_v3");
}
EXPORT int nvmlDeviceGetComputeRunningProcesses_v2(fake_dev *d, unsigned int *c,
                                                   nvmlProcessInfo_t *p) {
    return running_processes(d, c, p, "nvmlDeviceGetComputeRunningProcesses_v2");
}

EXPORT int nvmlDeviceIsMigDeviceHandle(fake_dev *device, unsigned int *is_mig) {
    ENTER("nvmlDeviceIsMigDeviceHandle");
    if (rc_ != NVML_SUCCESS) LEAVE(rc_);
    if ((!valid_device(device) && !valid_mig(device)) || !is_mig) {
        LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    }
    *is_mig = (unsigned int)device->is_mig;
    LEAVE(NVML_SUCCESS);
}

EXPORT int nvmlDeviceGetDeviceHandleFromMigDeviceHandle(fake_dev *mig, fake_dev **device) {
    ENTER("nvmlDeviceGetDeviceHandleFromMigDeviceHandle");
    if (rc_ != NVML_SUCCESS) LEAVE(rc_);
    if (!valid_mig(mig) || !device) LEAVE(NVML_ERROR_INVALID_ARGUMENT);
    if (mig->index < 0 || mig->index >= ndevices) LEAVE(NVML_ERROR_NOT_FOUND);
    *device = &devices[mig->index];
    LEAVE(NVML_SUCCESS);
}

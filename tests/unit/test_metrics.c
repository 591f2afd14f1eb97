/* test_metrics.c - Prometheus exposition: counters, cumulative buckets,
 * the closed loop's series. */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "tu_util.h"

static void test_render(void **st) {
    (void)st;
    metrics *m = metrics_create();
    metrics_observe_http(m, "/v1/models", "GET", 200, 0.0004);
    metrics_observe_http(m, "/v1/models", "GET", 200, 0.3);
    metrics_observe_http(m, "/v1/models", "GET", 401, 0.002);
    metrics_observe_http(m, NULL, "BREW", 404, 0.002);
    metrics_gauges g = {.in_flight = 3, .ready = 1, .start_time = 1700000000.5};
    size_t len;
    metrics_model mm = {.name = "tiny", .has_sched = true};
    mm.emb.batches = 3;
    mm.st.waiting = 2;
    mm.st.kv_blocks_total = 10;
    mm.st.kv_blocks_used = 4;
    mm.st.generated_tokens = 77;
    mm.st.ttft.buckets[0] = 1;
    mm.st.ttft.count = 1;
    char *t = metrics_render(m, &g, &mm, 1, &len);
    assert_non_null(t);
    assert_int_equal(strlen(t), len);
    const char *want[] = {
        "alignd_http_requests_total{route=\"/v1/models\",method=\"GET\",status=\"200\"} 2\n",
        "alignd_http_requests_total{route=\"/v1/models\",method=\"GET\",status=\"401\"} 1\n",
        "alignd_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"} 1\n",
        "alignd_http_request_duration_seconds_bucket{route=\"/v1/models\",method=\"GET\",le=\"0.001\"} 1\n",
        "alignd_http_request_duration_seconds_bucket{route=\"/v1/models\",method=\"GET\",le=\"0.005\"} 2\n",
        "alignd_http_request_duration_seconds_bucket{route=\"/v1/models\",method=\"GET\",le=\"0.25\"} 2\n",
        "alignd_http_request_duration_seconds_bucket{route=\"/v1/models\",method=\"GET\",le=\"0.5\"} 3\n",
        "alignd_http_request_duration_seconds_bucket{route=\"/v1/models\",method=\"GET\",le=\"+Inf\"} 3\n",
        "alignd_http_request_duration_seconds_count{route=\"/v1/models\",method=\"GET\"} 3\n",
        "# TYPE alignd_http_request_duration_seconds histogram\n",
        "alignd_http_requests_in_flight 3\n",
        "alignd_ready 1\n",
        "process_start_time_seconds 1700000000.500\n",
        "alignd_build_info{version=\"" ALIGND_VERSION "\",commit=",
        "alignd_queue_depth{model=\"tiny\"} 2\n",
        "alignd_embedding_batches_total{model=\"tiny\"} 3\n",
        "alignd_kv_blocks_used{model=\"tiny\"} 4\n",
        "alignd_kv_blocks_free{model=\"tiny\"} 6\n",
        "alignd_generated_tokens_total{model=\"tiny\"} 77\n",
        "alignd_time_to_first_token_seconds_bucket{model=\"tiny\",le=\"+Inf\"} 1\n",
        "alignd_requests_finished_total{model=\"tiny\",reason=\"stop\"} 0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(t, want[i])) fail_msg("missing: %s\nin:\n%s", want[i], t);
    free(t);
    metrics_free(m);
}

/* The closed loop's series: runs by final status, the current step, the
 * newest run's status as a state set, and per model with a loop the active
 * adapter's version and the pairs since its last run; none of them when
 * training is disabled (no training data, no has_loop). */
static void test_render_training(void **st) {
    (void)st;
    static const char *const names[5] = {"queued", "running", "succeeded", "failed", "cancelled"};
    metrics *m = metrics_create();
    metrics_training mt = {.status_names = names, .runs = {0, 0, 3, 1, 2}, .step = 17, .last_status = 4};
    metrics_gauges g = {.ready = 1, .training = &mt};
    metrics_model mm[2] = {{.name = "loop", .has_sched = true, .has_loop = true, .active_version = 5,
                            .pairs_since = 42},
                           {.name = "plain", .has_sched = true}};
    size_t len;
    char *t = metrics_render(m, &g, mm, 2, &len);
    assert_non_null(t);
    const char *want[] = {
        "# TYPE alignd_training_runs_total counter\n",
        "alignd_training_runs_total{status=\"succeeded\"} 3\n",
        "alignd_training_runs_total{status=\"failed\"} 1\n",
        "alignd_training_runs_total{status=\"cancelled\"} 2\n",
        "# TYPE alignd_training_step gauge\nalignd_training_step 17\n",
        "# TYPE alignd_training_last_run_status gauge\n",
        "alignd_training_last_run_status{status=\"succeeded\"} 0\n",
        "alignd_training_last_run_status{status=\"failed\"} 0\n",
        "alignd_training_last_run_status{status=\"cancelled\"} 1\n",
        "# TYPE alignd_adapter_active_version gauge\n",
        "alignd_adapter_active_version{model=\"loop\"} 5\n",
        "# TYPE alignd_feedback_pairs_since_last_run gauge\n",
        "alignd_feedback_pairs_since_last_run{model=\"loop\"} 42\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(t, want[i])) fail_msg("missing: %s\nin:\n%s", want[i], t);
    const char *unwanted[] = {"alignd_training_runs_total{status=\"queued\"}",
                              "alignd_training_runs_total{status=\"running\"}",
                              "alignd_adapter_active_version{model=\"plain\"}",
                              "alignd_feedback_pairs_since_last_run{model=\"plain\"}"};
    for (size_t i = 0; i < sizeof unwanted / sizeof unwanted[0]; i++)
        if (strstr(t, unwanted[i])) fail_msg("unexpected: %s\nin:\n%s", unwanted[i], t);
    free(t);
    /* no run finished yet: every state 0; training disabled: no series */
    mt.last_status = -1;
    t = metrics_render(m, &g, mm, 2, &len);
    assert_non_null(strstr(t, "alignd_training_last_run_status{status=\"succeeded\"} 0\n"));
    assert_non_null(strstr(t, "alignd_training_last_run_status{status=\"cancelled\"} 0\n"));
    free(t);
    g.training = NULL;
    mm[0].has_loop = false;
    t = metrics_render(m, &g, mm, 2, &len);
    assert_null(strstr(t, "alignd_training_step"));
    assert_null(strstr(t, "alignd_training_runs_total{"));
    assert_null(strstr(t, "alignd_adapter_active_version{"));
    free(t);
    metrics_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_render), cmocka_unit_test(test_render_training)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

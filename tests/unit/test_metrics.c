/* test_metrics.c - Prometheus exposition: counters, cumulative buckets. */
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

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_render)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

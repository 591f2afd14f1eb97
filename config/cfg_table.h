/* cfg_table.h - the one table of every configuration key.
 *
 * Each row: X(section, key, type, default, min, max, choices, flags, help)
 *   type     INT (long long), BOOL, STR, SIZE (bytes; K/M/G suffixes),
 *            DOUBLE, ENUM (one of `choices`, '|'-separated)
 *   min/max  inclusive bounds for INT, SIZE and DOUBLE (ignored otherwise)
 *   flags    CFG_F_SECRET: never printed by --print-config
 *
 * The table drives the struct cfg fields (cfg.section_key), INI parsing,
 * environment variables (ALIGND_SECTION_KEY), flags (--section.key=value),
 * `alignd --help`, `alignd --print-config` and config/alignd.ini (a test
 * keeps that file equal to `alignd --print-example-config`).
 */
#ifndef CFG_TABLE_H
#define CFG_TABLE_H

#define CFG_F_SECRET 1u

#define CFG_TABLE(X) \
    X(server, host, STR, "127.0.0.1", 0, 0, NULL, 0, \
      "Address to listen on: an IPv4 or IPv6 literal (0.0.0.0 or :: for all interfaces)") \
    X(server, port, INT, "8080", 1, 65535, NULL, 0, \
      "TCP port to listen on") \
    X(server, max_connections, INT, "512", 1, 100000, NULL, 0, \
      "Most client connections open at once; further connections wait until one closes") \
    X(server, connection_timeout, INT, "30", 1, 3600, NULL, 0, \
      "Seconds a connection may stay idle (or send nothing) before it is dropped") \
    X(server, max_body_size, SIZE, "1M", 1024, 1073741824, NULL, 0, \
      "Largest request body accepted by default (routes may set their own limit); larger gets 413") \
    X(server, shutdown_grace, INT, "30", 0, 3600, NULL, 0, \
      "Seconds in-flight requests may take to finish after SIGTERM/SIGINT before the daemon exits") \
    X(server, api_keys, STR, "", 0, 0, NULL, CFG_F_SECRET, \
      "Comma-separated API keys accepted as 'Authorization: Bearer KEY'; empty means no authentication") \
    X(server, api_key_file, STR, "", 0, 0, NULL, 0, \
      "File with one API key per line (added to api_keys); empty for none") \
    X(server, public_health, BOOL, "true", 0, 0, NULL, 0, \
      "Serve /health and /ready without an API key") \
    X(server, public_metrics, BOOL, "true", 0, 0, NULL, 0, \
      "Serve /metrics without an API key") \
    X(server, debug_routes, BOOL, "false", 0, 0, NULL, 0, \
      "Enable the /debug/* routes (asynchronous echo and SSE ticker used by tests)") \
    X(server, debug_queue_size, INT, "64", 1, 100000, NULL, 0, \
      "Jobs the debug worker queues before it answers 429") \
    X(log, file, STR, "", 0, 0, NULL, 0, \
      "Log file (reopened on SIGHUP); empty logs to standard error") \
    X(log, level, ENUM, "info", 0, 0, "debug|info|warn|error", 0, \
      "Least severe level written to the log") \
    X(log, access, BOOL, "true", 0, 0, NULL, 0, \
      "Write one JSON access-log line per request")

#endif

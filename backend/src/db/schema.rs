//! The database schema, kept by hand so that it uses only types both backends share
//! (Text, BigInt, Integer, Bool, Double, Binary). It mirrors `migrations/*/up.sql`; a test
//! checks the two stay in step by running queries against every table on both backends.

diesel::table! {
    nodes (id) {
        id -> Text,
        name -> Text,
        api_endpoint -> Text,
        is_primary -> Bool,
        status -> Text,
        labels -> Text,
        api_key_hash -> Binary,
        api_key_sealed -> Binary,
        previous_key_hash -> Nullable<Binary>,
        previous_key_sealed -> Nullable<Binary>,
        previous_key_expires_at -> Nullable<BigInt>,
        consecutive_failures -> Integer,
        last_seen -> Nullable<BigInt>,
        last_health_check -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        version -> Nullable<Text>,
        max_jobs -> Integer,
        last_stats -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        connect -> Text,
        connected_via -> Nullable<Text>,
    }
}

diesel::table! {
    node_status_history (id) {
        id -> Text,
        node_id -> Text,
        from_status -> Text,
        to_status -> Text,
        reason -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    node_stats (node_id, at) {
        node_id -> Text,
        at -> BigInt,
        cpu_percent -> Double,
        load_one -> Double,
        memory_used -> BigInt,
        memory_total -> BigInt,
        disk_used -> BigInt,
        disk_total -> BigInt,
        net_rx -> Double,
        net_tx -> Double,
        disk_read -> Double,
        disk_write -> Double,
        temperature -> Nullable<Double>,
    }
}

diesel::joinable!(node_status_history -> nodes (node_id));
diesel::joinable!(node_stats -> nodes (node_id));
diesel::allow_tables_to_appear_in_same_query!(
    nodes,
    node_status_history,
    node_stats,
    sessions,
    oauth_logins,
    api_tokens,
    audit_log,
    jobs,
    job_logs,
    alert_channels,
    alert_rules,
    alert_rule_channels,
    alert_states,
    alert_messages,
    alert_deliveries,
    join_tokens,
    runs,
    run_nodes
);

diesel::table! {
    sessions (id) {
        id -> Text,
        login -> Text,
        name -> Nullable<Text>,
        avatar_url -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    oauth_logins (state_hash) {
        state_hash -> Binary,
        pkce_verifier -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Text,
        name -> Text,
        token_hash -> Binary,
        created_by -> Text,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        last_used_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        at -> BigInt,
        actor -> Text,
        action -> Text,
        target -> Nullable<Text>,
        source_ip -> Nullable<Text>,
        details -> Nullable<Text>,
        target_name -> Nullable<Text>,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        name -> Nullable<Text>,
        command -> Text,
        env -> Text,
        working_dir -> Nullable<Text>,
        timeout_sec -> BigInt,
        node_id -> Nullable<Text>,
        labels -> Text,
        status -> Text,
        attempt -> Integer,
        assigned_node_id -> Nullable<Text>,
        queue_reason -> Nullable<Text>,
        exit_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        cancel_requested -> Bool,
        submitted_by -> Text,
        created_at -> BigInt,
        dispatched_at -> Nullable<BigInt>,
        started_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        log_bytes -> BigInt,
        run_id -> Nullable<Text>,
    }
}

diesel::table! {
    job_logs (job_id, seq) {
        job_id -> Text,
        seq -> BigInt,
        stream -> Text,
        data -> Binary,
        at -> BigInt,
    }
}

diesel::joinable!(job_logs -> jobs (job_id));

diesel::table! {
    runs (id) {
        id -> Text,
        name -> Nullable<Text>,
        command -> Text,
        env -> Text,
        working_dir -> Nullable<Text>,
        timeout_sec -> BigInt,
        target_all -> Bool,
        labels -> Text,
        node_ids -> Text,
        max_parallel -> Nullable<Integer>,
        stop_on_failure -> Bool,
        stopped -> Nullable<Text>,
        cancelled -> Bool,
        submitted_by -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    run_nodes (run_id, position) {
        run_id -> Text,
        position -> Integer,
        node_id -> Text,
        node_name -> Text,
        job_id -> Nullable<Text>,
        skipped -> Nullable<Text>,
    }
}

diesel::joinable!(run_nodes -> runs (run_id));

diesel::table! {
    cluster (id) {
        id -> Integer,
        primary_node_id -> Text,
        key_check -> Nullable<Binary>,
        created_at -> BigInt,
    }
}

diesel::table! {
    primaries (id) {
        id -> Text,
        name -> Text,
        url -> Text,
        started_at -> BigInt,
        last_seen -> BigInt,
    }
}

diesel::table! {
    leader_lease (id) {
        id -> Integer,
        holder -> Nullable<Text>,
        epoch -> BigInt,
        since -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    change_log (id) {
        id -> BigInt,
        kind -> Text,
        subject -> Text,
        origin -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    alert_channels (id) {
        id -> Text,
        name -> Text,
        kind -> Text,
        url -> Text,
        settings -> Text,
        sealed -> Binary,
        summary_over -> Nullable<Integer>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    alert_rules (id) {
        id -> Text,
        name -> Text,
        event -> Text,
        labels -> Text,
        nodes -> Text,
        threshold -> Nullable<Double>,
        for_secs -> BigInt,
        muted_until -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    alert_rule_channels (rule_id, channel_id) {
        rule_id -> Text,
        channel_id -> Text,
    }
}

diesel::table! {
    alert_states (rule_id, subject) {
        rule_id -> Text,
        subject -> Text,
        phase -> Text,
        since -> BigInt,
        flapping_since -> Nullable<BigInt>,
        flips -> Integer,
        holds -> Bool,
    }
}

diesel::table! {
    alert_messages (id) {
        id -> Text,
        rule_id -> Nullable<Text>,
        rule_name -> Text,
        event -> Text,
        state -> Text,
        node_id -> Nullable<Text>,
        node_name -> Nullable<Text>,
        job_id -> Nullable<Text>,
        text -> Text,
        body -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    alert_deliveries (id) {
        id -> Text,
        message_id -> Text,
        channel_id -> Text,
        status -> Text,
        attempts -> Integer,
        next_try_at -> Nullable<BigInt>,
        last_attempt_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        delivered_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(alert_rule_channels -> alert_rules (rule_id));
diesel::joinable!(alert_rule_channels -> alert_channels (channel_id));
diesel::joinable!(alert_deliveries -> alert_messages (message_id));
diesel::joinable!(alert_deliveries -> alert_channels (channel_id));

diesel::table! {
    join_tokens (id) {
        id -> Text,
        token_hash -> Binary,
        name -> Nullable<Text>,
        labels -> Text,
        created_by -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        used_by -> Nullable<Text>,
    }
}

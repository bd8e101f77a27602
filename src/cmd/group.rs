//! `weir group`: consumer groups for operators. Declare a group (its traffic role and
//! assignment strategy), list and describe groups (members, queues, subscriptions,
//! refused conflicts), measure a group's lag, reset its offsets, replace its
//! subscription deliberately, read the filter statistics of its subscriptions, and set
//! its retry policy (a dlq-policy plugin, a redelivery limit).

use std::process::ExitCode;

use anyhow::anyhow;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use weir_client::{
    Change, Error as ClientError, ErrorCode, FilterExpression, GroupConfig, GroupDescription, GroupSummary, MemberInfo,
    OffsetTarget, PolicyPlugin, QueueLag, RetryPolicyInfo, Subscription, SubscriptionStats, TopicAssignment,
};

use crate::cmd::BrokerAddr;
use crate::cmd::time::{format_utc_ms, parse_time};

/// `weir group` subcommands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Declare a consumer group: its traffic role (`--shadow`) and assignment strategy.
    Create(CreateArgs),
    /// List the broker's consumer groups.
    ///
    /// With --json, one object per group: {"group", "members", "generation", "strategy",
    /// "mode", "subscriptions", "shadow", "conflicts"}; `members`, `subscriptions` and
    /// `conflicts` are counts, `mode` is "clustering" or "broadcasting".
    List(ListArgs),
    /// Show one group: members and their queues, subscriptions, refused conflicts.
    ///
    /// With --json, one object for the whole group: {"group", "generation", "strategy",
    /// "mode", "shadow", "members", "subscriptions", "conflicts", "conflict"}. Each member
    /// is {"member_id", "host", "mode", "orderly", "queues", "last_heartbeat_ms"} with
    /// `queues` a list of {"topic", "queue_id", "since_generation"}; each subscription
    /// {"topic", "expression", "plugin", "version"} (`plugin` null when none); each
    /// conflict {"member_id", "host", "topic", "expression", "group_expression",
    /// "refused_ms"}; `conflict` is true when any member was refused; `retry` is the
    /// group's retry policy (see `set-policy`). An unknown group fails (exit status 1).
    Describe(DescribeArgs),
    /// Show how far a group is behind, per queue, then totals.
    ///
    /// With --json, one object per queue: {"group", "topic", "queue_id", "broker_offset",
    /// "committed_offset", "lag", "owner", "last_commit_ms"}, where `committed_offset`,
    /// `owner` and `last_commit_ms` (Unix ms) are null when there is none; then one totals
    /// line: {"total": true, "group", "topic", "queues", "broker_offset", "lag",
    /// "committed_queues", "owned_queues"}, where `queues` counts the lines before it,
    /// `broker_offset` and `lag` are their sums, `committed_queues` and `owned_queues`
    /// count those with a committed offset and an owner, and `topic` is null without
    /// --topic. In a broadcasting group each line is one member's offset of one queue.
    Lag(LagArgs),
    /// Move a group's committed offsets on every queue of a topic.
    ///
    /// `--to` is `earliest` (each queue's first stored message), `latest` (each queue's
    /// end: skip everything stored) or a time: Unix milliseconds, or RFC 3339 such as
    /// 2026-12-02T10:00:00Z or 2026-12-02T12:00:00.250+02:00 (each queue's first message
    /// stored at or after it). The group's generation is bumped: its live members drop
    /// their positions and fetch the new offsets. With --json, one object per queue:
    /// {"group", "topic", "queue_id", "offset", "generation"}.
    ResetOffset(ResetOffsetArgs),
    /// Replace a group's subscription to a topic, deliberately.
    ///
    /// Registers the expression (and filter plugin) as the group's subscription to the
    /// topic, whatever its members hold; pulls of the group use it from then on. `weir
    /// group describe` shows the new version, and members later refused for a differing
    /// subscription. With --json, one object: {"group", "topic", "expression", "plugin",
    /// "version"}.
    SetSubscription(SetSubscriptionArgs),
    /// Show the filter statistics of a group's subscriptions.
    Stats(StatsArgs),
    /// Set a group's retry policy: attach a dlq-policy plugin (`--plugin`, replacing any;
    /// `--clear` detaches it) and/or the group's own redelivery limit.
    ///
    /// On every failed delivery of the group the broker calls the plugin, which decides:
    /// retry after N ms, dead-letter now, or discard. A failing plugin falls back to the
    /// default schedule (delay level 3 + redeliveries, then the dead-letter topic after
    /// `max_reconsume_times`). Decisions change from the next failure on. With --json,
    /// one object: the `retry` object of `weir group describe --json`: {"plugin",
    /// "params", "max_reconsume_times", "group_limit", "failures", "retries",
    /// "dead_letters", "discards", "fallbacks", "policy_calls", "policy_errors",
    /// "policy_mean_call_us", "resent"} (`plugin` and `params` null when none).
    SetPolicy(SetPolicyArgs),
}

/// Arguments of `weir group set-policy`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true)
    .args(["plugin", "clear", "max_reconsume_times", "default_max_reconsume_times"])))]
pub struct SetPolicyArgs {
    /// The consumer group.
    #[arg(long)]
    group: String,
    /// The dlq-policy plugin (`weir plugin upload`) to attach.
    #[arg(long, value_name = "NAME", conflicts_with = "clear")]
    plugin: Option<String>,
    /// Parameters for the plugin's init.
    #[arg(long, value_name = "STR", requires = "plugin", default_value = "")]
    params: String,
    /// Detach the group's plugin: failures get the default schedule.
    #[arg(long)]
    clear: bool,
    /// The group's own limit of redeliveries before the dead-letter topic.
    #[arg(long, value_name = "N", conflicts_with = "default_max_reconsume_times")]
    max_reconsume_times: Option<u32>,
    /// Drop the group's own limit: the broker's `max_reconsume_times` applies.
    #[arg(long)]
    default_max_reconsume_times: bool,
    /// Print the policy as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// How a group's queues are split among its live members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    /// Contiguous runs of the sorted queues, in member order (RocketMQ's default).
    Average,
    /// Queue k to member k mod M.
    RoundRobin,
    /// A hash ring with bounded loads: most queues stay put when members change.
    ConsistentHash,
    /// Balanced, and moves the fewest queues when members change.
    Sticky,
}

impl Strategy {
    /// The broker's name for it.
    fn as_str(self) -> &'static str {
        match self {
            Strategy::Average => "average",
            Strategy::RoundRobin => "round-robin",
            Strategy::ConsistentHash => "consistent-hash",
            Strategy::Sticky => "sticky",
        }
    }
}

/// Arguments of `weir group create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The group's name.
    name: String,
    /// Receive only shadow traffic (messages with `shadow=true`); without it the group
    /// is (or becomes) a production group, which never receives shadow traffic.
    #[arg(long)]
    shadow: bool,
    /// The assignment strategy; live members are rebalanced at once. Without it the group
    /// keeps its strategy (`average` for a new group).
    #[arg(long, value_enum)]
    strategy: Option<Strategy>,
    /// Print the result as one JSON object: {"group", "shadow", "strategy"}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Arguments of `weir group list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON object per group.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Arguments of `weir group describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The consumer group.
    #[arg(long)]
    group: String,
    /// One JSON object for the whole group.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Arguments of `weir group lag`.
#[derive(Debug, Args)]
pub struct LagArgs {
    /// The consumer group.
    #[arg(long)]
    group: String,
    /// Only this topic (also one the group does not subscribe to); without it, every
    /// topic the group subscribes to.
    #[arg(long)]
    topic: Option<String>,
    /// One JSON object per queue, then a totals object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Arguments of `weir group reset-offset`.
#[derive(Debug, Args)]
pub struct ResetOffsetArgs {
    /// The consumer group.
    #[arg(long)]
    group: String,
    /// The topic whose queues are reset (all of them).
    #[arg(long)]
    topic: String,
    /// Where to: `earliest`, `latest`, Unix milliseconds, or an RFC 3339 time
    /// (`2026-12-02T10:00:00Z`).
    #[arg(long, value_name = "earliest|latest|TIMESTAMP", value_parser = parse_offset_target)]
    to: OffsetTarget,
    /// One JSON object per queue.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Arguments of `weir group set-subscription`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("expression").required(true).args(["tag", "sql", "all"])))]
pub struct SetSubscriptionArgs {
    /// The consumer group.
    #[arg(long)]
    group: String,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// Tag subscription: `TagA || TagB` (`*` is every message).
    #[arg(long, value_name = "EXPR")]
    tag: Option<String>,
    /// SQL92 subscription over properties, e.g. `region = 'SH' AND amount > 100`.
    #[arg(long, value_name = "EXPR")]
    sql: Option<String>,
    /// Every message.
    #[arg(long)]
    all: bool,
    /// A filter plugin (`weir plugin upload`) run on what the expression lets through
    /// (`--filter` on `weir consume`).
    #[arg(long, value_name = "NAME", visible_alias = "filter")]
    plugin: Option<String>,
    /// Parameters for the filter plugin's init.
    #[arg(long, value_name = "P", requires = "plugin", default_value = "", visible_alias = "filter-params")]
    plugin_params: String,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

impl SetSubscriptionArgs {
    /// The subscription these flags describe.
    fn subscription(&self) -> Subscription {
        let subscription = match (&self.tag, &self.sql) {
            (Some(tag), _) => Subscription::tag(tag.clone()),
            (None, Some(sql)) => Subscription::sql(sql.clone()),
            (None, None) => Subscription::all(),
        };
        match &self.plugin {
            Some(plugin) => subscription.plugin(plugin.clone(), self.plugin_params.clone()),
            None => subscription,
        }
    }
}

/// Arguments of `weir group stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The consumer group.
    #[arg(long)]
    group: String,
    /// Only this topic.
    #[arg(long)]
    topic: Option<String>,
    /// One JSON object per (group, topic).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Runs a `weir group` subcommand.
pub async fn run(command: GroupCommand) -> anyhow::Result<ExitCode> {
    match command {
        GroupCommand::Create(args) => create(args).await,
        GroupCommand::List(args) => list(args).await,
        GroupCommand::Describe(args) => describe(args).await,
        GroupCommand::Lag(args) => lag(args).await,
        GroupCommand::ResetOffset(args) => reset_offset(args).await,
        GroupCommand::SetSubscription(args) => set_subscription(args).await,
        GroupCommand::Stats(args) => stats(args).await,
        GroupCommand::SetPolicy(args) => set_policy(args).await,
    }
}

async fn set_policy(args: SetPolicyArgs) -> anyhow::Result<ExitCode> {
    let plugin = match (&args.plugin, args.clear) {
        (Some(plugin), _) => Change::Set(PolicyPlugin { plugin: plugin.clone(), params: args.params.clone() }),
        (None, true) => Change::Clear,
        (None, false) => Change::Keep,
    };
    let limit = match (args.max_reconsume_times, args.default_max_reconsume_times) {
        (Some(n), _) => Change::Set(n),
        (None, true) => Change::Clear,
        (None, false) => Change::Keep,
    };
    let client = args.broker.connect().await?;
    let policy = client.set_group_policy(&args.group, plugin, limit).await;
    client.close().await;
    let policy =
        policy.map_err(|err| anyhow::Error::new(err).context(format!("setting group {}'s policy", args.group)))?;
    if args.json {
        println!("{}", retry_json(&policy));
    } else {
        println!("group {}: {}", args.group, retry_text(&policy));
    }
    Ok(ExitCode::SUCCESS)
}

/// A group's retry policy as JSON (`retry` in `weir group describe --json`).
fn retry_json(r: &RetryPolicyInfo) -> Value {
    let s = &r.stats;
    json!({
        "plugin": r.plugin.as_ref().map(|p| &p.plugin), "params": r.plugin.as_ref().map(|p| &p.params),
        "max_reconsume_times": r.max_reconsume_times, "group_limit": r.group_limit,
        "failures": s.failures, "retries": s.retries, "dead_letters": s.dead_letters, "discards": s.discards,
        "fallbacks": s.fallbacks, "policy_calls": s.policy_calls, "policy_errors": s.policy_errors,
        "policy_mean_call_us": mean_call_us(s.policy_call_nanos, s.policy_calls), "resent": s.resent,
    })
}

/// A group's retry policy for people: plugin, limit, then what its failures became.
fn retry_text(r: &RetryPolicyInfo) -> String {
    let s = &r.stats;
    let plugin = match &r.plugin {
        Some(p) if p.params.is_empty() => format!("policy plugin {}", p.plugin),
        Some(p) => format!("policy plugin {} ({})", p.plugin, p.params),
        None => "default schedule".to_owned(),
    };
    let limit = if r.group_limit { "group's own" } else { "broker's" };
    let mut text = format!(
        "{plugin}, max_reconsume_times {} ({limit}); failures {}: {} retried, {} dead-lettered, {} discarded, {} resent",
        r.max_reconsume_times, s.failures, s.retries, s.dead_letters, s.discards, s.resent
    );
    if r.plugin.is_some() || s.policy_calls > 0 {
        text.push_str(&format!(
            "; plugin calls {} ({} failed, {} fell back to the default), mean {:.1} µs",
            s.policy_calls,
            s.policy_errors,
            s.fallbacks,
            mean_call_us(s.policy_call_nanos, s.policy_calls)
        ));
    }
    text
}

/// Mean call time in µs (0 before the first call).
fn mean_call_us(total_nanos: u64, calls: u64) -> f64 {
    if calls == 0 { 0.0 } else { total_nanos as f64 / calls as f64 / 1000.0 }
}

async fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let client = args.broker.connect().await?;
    let config =
        GroupConfig { name: args.name, shadow: args.shadow, strategy: args.strategy.map(|s| s.as_str().to_owned()) };
    let group = client.declare_group(config).await?;
    client.close().await;
    if args.json {
        println!("{}", json!({ "group": group.name, "shadow": group.shadow, "strategy": group.strategy }));
    } else {
        let role = if group.shadow { "shadow" } else { "production" };
        let strategy = group.strategy.as_deref().map_or(String::new(), |s| format!(", strategy {s}"));
        println!("group {} is a {role} group{strategy}", group.name);
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = args.broker.connect().await?;
    let groups = client.list_groups().await?;
    client.close().await;
    if args.json {
        for g in &groups {
            println!("{}", summary_json(g));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if groups.is_empty() {
        eprintln!("no consumer groups");
        return Ok(ExitCode::SUCCESS);
    }
    let header = ["GROUP", "MEMBERS", "GENERATION", "STRATEGY", "MODE", "SUBSCRIPTIONS", "SHADOW", "CONFLICTS"];
    let rows = groups.iter().map(|g| {
        vec![
            g.name.clone(),
            g.members.to_string(),
            g.generation.to_string(),
            g.strategy.clone(),
            g.mode.as_str().to_owned(),
            g.subscriptions.to_string(),
            yes_no(g.shadow).to_owned(),
            g.conflicts.to_string(),
        ]
    });
    print_table("", &header, rows);
    println!("{} group(s)", groups.len());
    Ok(ExitCode::SUCCESS)
}

async fn describe(args: DescribeArgs) -> anyhow::Result<ExitCode> {
    let client = args.broker.connect().await?;
    let group = client.describe_group(&args.group).await.map_err(|err| group_error(&args.group, err))?;
    client.close().await;
    if args.json {
        println!("{}", description_json(&group));
    } else {
        print_description(&group);
    }
    Ok(ExitCode::SUCCESS)
}

async fn lag(args: LagArgs) -> anyhow::Result<ExitCode> {
    let client = args.broker.connect().await?;
    let lags =
        client.group_lag(&args.group, args.topic.as_deref()).await.map_err(|err| group_error(&args.group, err))?;
    if lags.is_empty() {
        // No topic given and none subscribed: an unknown group, or one without subscriptions.
        client.describe_group(&args.group).await.map_err(|err| group_error(&args.group, err))?;
        eprintln!("group {} subscribes to no topic; name one with --topic", args.group);
    }
    client.close().await;
    let totals = LagTotals::of(&lags);
    if args.json {
        for l in &lags {
            println!("{}", lag_json(&args.group, l));
        }
        println!("{}", totals.json(&args.group, args.topic.as_deref()));
        return Ok(ExitCode::SUCCESS);
    }
    if !lags.is_empty() {
        let header = ["TOPIC", "QUEUE", "BROKER OFFSET", "COMMITTED", "LAG", "OWNER", "LAST COMMIT"];
        let rows = lags.iter().map(|l| {
            vec![
                l.topic.clone(),
                l.queue_id.to_string(),
                l.broker_offset.to_string(),
                l.committed_offset.map_or_else(|| "-".to_owned(), |o| o.to_string()),
                l.lag.to_string(),
                l.owner.clone().unwrap_or_else(|| "-".to_owned()),
                l.last_commit_ms.map_or_else(|| "-".to_owned(), format_utc_ms),
            ]
        });
        print_table("", &header, rows);
    }
    println!(
        "total: lag {} over {} queue(s), broker offsets {}; {} committed, {} owned",
        totals.lag, totals.queues, totals.broker_offset, totals.committed, totals.owned
    );
    Ok(ExitCode::SUCCESS)
}

async fn reset_offset(args: ResetOffsetArgs) -> anyhow::Result<ExitCode> {
    if let OffsetTarget::Timestamp(ms) = args.to
        && ms < PLAUSIBLE_MS
    {
        eprintln!(
            "warning: --to {ms} is read as Unix milliseconds ({}); Unix seconds need 000 appended",
            format_utc_ms(ms)
        );
    }
    let client = args.broker.connect().await?;
    let reset = client.reset_offset(&args.group, &args.topic, args.to).await?;
    client.close().await;
    if args.json {
        for q in &reset.queues {
            println!(
                "{}",
                json!({
                    "group": args.group, "topic": args.topic, "queue_id": q.queue_id,
                    "offset": q.offset, "generation": reset.generation,
                })
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let to = match args.to {
        OffsetTarget::Earliest => "earliest".to_owned(),
        OffsetTarget::Latest => "latest".to_owned(),
        OffsetTarget::Timestamp(ms) => format!("{} ({ms})", format_utc_ms(ms)),
    };
    println!("reset group {} on topic {} to {to}: generation {}", args.group, args.topic, reset.generation);
    let rows = reset.queues.iter().map(|q| vec![q.queue_id.to_string(), q.offset.to_string()]);
    print_table("  ", &["QUEUE", "OFFSET"], rows);
    Ok(ExitCode::SUCCESS)
}

async fn set_subscription(args: SetSubscriptionArgs) -> anyhow::Result<ExitCode> {
    let subscription = args.subscription();
    let client = args.broker.connect().await?;
    let version = client.subscribe(&args.group, &args.topic, &subscription).await?;
    client.close().await;
    let expression = expression_text(subscription.filter());
    if args.json {
        println!(
            "{}",
            json!({
                "group": args.group, "topic": args.topic, "expression": expression,
                "plugin": args.plugin, "version": version,
            })
        );
    } else {
        let plugin = args.plugin.as_deref().map_or(String::new(), |p| format!(" | plugin {p}"));
        println!("group {} subscribes to {} with `{expression}{plugin}`: version {version}", args.group, args.topic);
    }
    Ok(ExitCode::SUCCESS)
}

async fn stats(args: StatsArgs) -> anyhow::Result<ExitCode> {
    let client = args.broker.connect().await?;
    let stats = client.group_stats(&args.group, args.topic.as_deref()).await?;
    client.close().await;
    if stats.is_empty() {
        eprintln!(
            "group {} has no subscription{}",
            args.group,
            args.topic.map_or(String::new(), |t| format!(" to {t}"))
        );
        return Ok(ExitCode::FAILURE);
    }
    for s in &stats {
        if args.json {
            println!("{}", stats_json(s));
        } else {
            println!("{}", stats_line(s));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A broker refusal about `group`; `NOT_FOUND` says plainly that there is no such group.
fn group_error(group: &str, err: ClientError) -> anyhow::Error {
    if err.code() == Some(ErrorCode::NotFound) {
        anyhow!(
            "no consumer group {group} on the broker (NOT_FOUND): declare it with `weir group create` or give it a \
             subscription"
        )
    } else {
        anyhow::Error::new(err).context(format!("group {group}"))
    }
}

/// `weir group list --json`: one group.
fn summary_json(g: &GroupSummary) -> Value {
    json!({
        "group": g.name, "members": g.members, "generation": g.generation, "strategy": g.strategy,
        "mode": g.mode.as_str(), "subscriptions": g.subscriptions, "shadow": g.shadow, "conflicts": g.conflicts,
    })
}

/// `weir group describe --json`: the whole group.
fn description_json(d: &GroupDescription) -> Value {
    let members: Vec<Value> = d.members.iter().map(member_json).collect();
    let subscriptions: Vec<Value> = d
        .subscriptions
        .iter()
        .map(|s| json!({ "topic": s.topic, "expression": s.expression, "plugin": s.plugin, "version": s.version }))
        .collect();
    let conflicts: Vec<Value> = d
        .conflicts
        .iter()
        .map(|c| {
            json!({
                "member_id": c.member_id, "host": c.host, "topic": c.topic, "expression": c.expression,
                "group_expression": c.group_expression, "refused_ms": c.refused_ms,
            })
        })
        .collect();
    json!({
        "group": d.name, "generation": d.generation, "strategy": d.strategy, "mode": d.mode.as_str(),
        "shadow": d.shadow, "members": members, "subscriptions": subscriptions, "conflicts": conflicts,
        "conflict": !d.conflicts.is_empty(), "retry": retry_json(&d.retry),
    })
}

/// One member of `weir group describe --json`.
fn member_json(m: &MemberInfo) -> Value {
    let queues: Vec<Value> = m
        .assignments
        .iter()
        .flat_map(|a| {
            a.queues
                .iter()
                .map(|q| json!({ "topic": a.topic, "queue_id": q.queue_id, "since_generation": q.since_generation }))
        })
        .collect();
    json!({
        "member_id": m.member_id, "host": m.host, "mode": m.mode.as_str(), "orderly": m.orderly,
        "queues": queues, "last_heartbeat_ms": m.last_heartbeat_ms,
    })
}

/// `weir group describe` for people: a header line, then members, subscriptions and
/// conflicts, each a table.
fn print_description(d: &GroupDescription) {
    let role = if d.shadow { "shadow" } else { "production" };
    println!("group {}: generation {}, strategy {}, {}, {role}", d.name, d.generation, d.strategy, d.mode.as_str());
    if d.members.is_empty() {
        println!("members: none live");
    } else {
        println!("members ({}):", d.members.len());
        let rows = d.members.iter().map(|m| {
            vec![
                m.member_id.clone(),
                m.host.clone(),
                m.mode.as_str().to_owned(),
                yes_no(m.orderly).to_owned(),
                format!("{:.1} s ago", m.last_heartbeat_ms as f64 / 1000.0),
                queues_text(&m.assignments),
            ]
        });
        print_table("  ", &["MEMBER", "HOST", "MODE", "ORDERLY", "HEARTBEAT", "QUEUES"], rows);
    }
    if d.subscriptions.is_empty() {
        println!("subscriptions: none");
    } else {
        println!("subscriptions ({}):", d.subscriptions.len());
        let rows = d.subscriptions.iter().map(|s| {
            vec![
                s.topic.clone(),
                s.expression.clone(),
                s.plugin.clone().unwrap_or_else(|| "-".to_owned()),
                s.version.to_string(),
            ]
        });
        print_table("  ", &["TOPIC", "EXPRESSION", "PLUGIN", "VERSION"], rows);
    }
    if d.conflicts.is_empty() {
        println!("conflicts: none");
    } else {
        println!("CONFLICT: {} member(s) refused for a differing subscription:", d.conflicts.len());
        let rows = d.conflicts.iter().map(|c| {
            vec![
                c.member_id.clone(),
                c.host.clone(),
                c.topic.clone(),
                c.expression.clone(),
                c.group_expression.clone(),
                format!("{:.1} s ago", c.refused_ms as f64 / 1000.0),
            ]
        });
        print_table("  ", &["MEMBER", "HOST", "TOPIC", "EXPRESSION", "GROUP EXPRESSION", "REFUSED"], rows);
    }
    println!("retry: {}", retry_text(&d.retry));
}

/// A member's queues for people: `orders: 0,1,2; payments: 3`, `-` for none.
fn queues_text(assignments: &[TopicAssignment]) -> String {
    let topics: Vec<String> = assignments
        .iter()
        .filter(|a| !a.queues.is_empty())
        .map(|a| {
            let ids: Vec<String> = a.queues.iter().map(|q| q.queue_id.to_string()).collect();
            format!("{}: {}", a.topic, ids.join(","))
        })
        .collect();
    if topics.is_empty() { "-".to_owned() } else { topics.join("; ") }
}

/// One line of `weir group lag --json`.
fn lag_json(group: &str, l: &QueueLag) -> Value {
    json!({
        "group": group, "topic": l.topic, "queue_id": l.queue_id, "broker_offset": l.broker_offset,
        "committed_offset": l.committed_offset, "lag": l.lag, "owner": l.owner, "last_commit_ms": l.last_commit_ms,
    })
}

/// The totals line of `weir group lag`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct LagTotals {
    queues: u64,
    broker_offset: u64,
    lag: u64,
    committed: u64,
    owned: u64,
}

impl LagTotals {
    fn of(lags: &[QueueLag]) -> Self {
        lags.iter().fold(LagTotals::default(), |t, l| LagTotals {
            queues: t.queues + 1,
            broker_offset: t.broker_offset.saturating_add(l.broker_offset),
            lag: t.lag.saturating_add(l.lag),
            committed: t.committed + u64::from(l.committed_offset.is_some()),
            owned: t.owned + u64::from(l.owner.is_some()),
        })
    }

    fn json(&self, group: &str, topic: Option<&str>) -> Value {
        json!({
            "total": true, "group": group, "topic": topic, "queues": self.queues,
            "broker_offset": self.broker_offset, "lag": self.lag,
            "committed_queues": self.committed, "owned_queues": self.owned,
        })
    }
}

/// A subscription's expression as the broker shows it (`*`, `tag A || B`, `sql …`).
fn expression_text(filter: &FilterExpression) -> String {
    match filter {
        FilterExpression::All => "*".to_owned(),
        FilterExpression::Tag(tags) => format!("tag {tags}"),
        FilterExpression::Sql(sql) => format!("sql {sql}"),
        FilterExpression::Subscribed => "(registered)".to_owned(),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Prints a header and rows as columns padded to their widest cell, each line after
/// `indent`; a column of numbers (and `-` for none) is aligned right.
fn print_table(indent: &str, header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.into_iter().collect();
    let width =
        |i: usize| rows.iter().map(|r| r[i].chars().count()).chain([header[i].chars().count()]).max().unwrap_or(0);
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let is_number = |cell: &str| cell.parse::<u64>().is_ok();
    let numeric: Vec<bool> = (0..header.len())
        .map(|i| rows.iter().all(|r| r[i] == "-" || is_number(&r[i])) && rows.iter().any(|r| is_number(&r[i])))
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> =
            cells
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    if numeric[i] { format!("{cell:>w$}", w = widths[i]) } else { format!("{cell:<w$}", w = widths[i]) }
                })
                .collect();
        println!("{indent}{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Below this, a Unix-millisecond time is before March 1973: probably Unix seconds.
const PLAUSIBLE_MS: u64 = 100_000_000_000;

/// Parses `--to`: `earliest`, `latest`, or a time (Unix milliseconds or RFC 3339).
fn parse_offset_target(s: &str) -> Result<OffsetTarget, String> {
    match s.trim() {
        "earliest" => Ok(OffsetTarget::Earliest),
        "latest" => Ok(OffsetTarget::Latest),
        time => parse_time(time).map(OffsetTarget::Timestamp),
    }
}

/// Share of SQL evaluations that did not match (the bloom stage's observed false positives).
fn false_positive_rate(s: &SubscriptionStats) -> f64 {
    let c = &s.counters;
    if c.evaluated_sql == 0 { 0.0 } else { c.sql_false as f64 / c.evaluated_sql as f64 }
}

/// One subscription's statistics as a JSON object.
pub fn stats_json(s: &SubscriptionStats) -> serde_json::Value {
    let c = &s.counters;
    serde_json::json!({
        "group": s.consumer_group, "topic": s.topic, "subscription": s.expression, "version": s.version,
        "shadow": s.shadow, "examined": c.examined, "skipped_by_tag": c.skipped_by_tag,
        "skipped_by_bloom": c.skipped_by_bloom, "skipped_by_block": c.skipped_by_block,
        "skipped_shadow": c.skipped_shadow, "evaluated_sql": c.evaluated_sql, "sql_false": c.sql_false,
        "sql_errors": c.sql_errors, "plugin_rejected": c.plugin_rejected, "plugin_errors": c.plugin_errors,
        "delivered": c.delivered, "body_reads": c.body_reads,
        "bloom_false_positive_rate": false_positive_rate(s),
    })
}

/// One subscription's statistics as a line of text.
pub fn stats_line(s: &SubscriptionStats) -> String {
    let c = &s.counters;
    let pct = |n: u64| if c.examined == 0 { 0.0 } else { 100.0 * n as f64 / c.examined as f64 };
    format!(
        "{}/{} [{}{}] v{}: examined {}, delivered {}, bodies read {} ({:.2} %); skipped: block {}, tag {}, bloom {}, shadow {}; sql {} evaluated, {} false, {} errors ({:.2} % rejected after the bloom)",
        s.consumer_group,
        s.topic,
        s.expression,
        if s.shadow { ", shadow group" } else { "" },
        s.version,
        c.examined,
        c.delivered,
        c.body_reads,
        pct(c.body_reads),
        c.skipped_by_block,
        c.skipped_by_tag,
        c.skipped_by_bloom,
        c.skipped_shadow,
        c.evaluated_sql,
        c.sql_false,
        c.sql_errors,
        100.0 * false_positive_rate(s),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_targets() {
        assert_eq!(parse_offset_target("earliest"), Ok(OffsetTarget::Earliest));
        assert_eq!(parse_offset_target("latest"), Ok(OffsetTarget::Latest));
        assert_eq!(parse_offset_target("1796205600000"), Ok(OffsetTarget::Timestamp(1_796_205_600_000)));
        assert_eq!(parse_offset_target("2026-12-02T10:00:00Z"), Ok(OffsetTarget::Timestamp(1_796_205_600_000)));
        assert!(parse_offset_target("yesterday").is_err());
        assert!(parse_offset_target("99999999999999999999999").is_err());
    }
}

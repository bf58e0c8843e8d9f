DROP TABLE alert_deliveries;
DROP TABLE alert_messages;
DROP TABLE alert_states;
DROP TABLE alert_rule_channels;
DROP TABLE alert_rules;
DROP TABLE alert_channels;

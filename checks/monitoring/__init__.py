"""Monitoring, alerting and logging: will the operator know when the deployment breaks?

Checked against the deployment's real Prometheus (scrape targets up, host and service
signals present and fresh, alert rules loaded and evaluating), its Alertmanager (a route
and a receiver with an integration for each required alert; a drill that posts a synthetic
alert and one that stops an instance and times the unavailability alert), Grafana (a
dashboard exists) and each host's log files (written recently, structured, rotated, not at
debug level).  docs/monitoring.md is the user guide.
"""

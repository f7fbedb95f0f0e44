"""`make bench` / `veilig bench`: how fast the platform is, next to what the broker alone does.

The method is in ``docs/benchmarks.md``. Modules:

- ``settings``: what the benchmark points at (environment) and how long it runs (profiles);
- ``reports``: the report bodies (never merged as duplicates, always routed to a recipient);
- ``loadgen``: the load generator, a process of its own driven through a pipe;
- ``observe``: deliveries at the stand-in receiver, counts in analytics, CPU and memory;
- ``kafka_tools``: Kafka's own ProducerPerformance and ConsumerPerformance;
- ``stats``: percentiles, backlog growth and the saturation rule (pure);
- ``scenarios``: the six scenarios; ``output``: JSON, Markdown and plots; ``cli``: the command.
"""

"""What GetStatus reports: stage latencies, frame counters and GPU health."""

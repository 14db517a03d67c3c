"""localkafka"""

"""filters.dedup"""

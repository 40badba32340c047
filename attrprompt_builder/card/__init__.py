"""card"""

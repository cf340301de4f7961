"""kpremia.data"""

"""kpremia.eval"""
